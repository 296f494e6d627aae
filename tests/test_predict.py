"""`nlpkit predict` and `nlpkit runs` through the CLI, errors included."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from typer.testing import CliRunner

import fake_model
from nlpkit.cli import app
from nlpkit.experiment import run_experiment
from nlpkit.models.majority import MajorityClassifier

runner = CliRunner()


@pytest.fixture
def keyword_run(single_split, fake_registry):
    return run_experiment(fake_model.KeywordClassifier(), single_split, config={}, seed=0)


@pytest.fixture
def multi_run(multi_split):
    return run_experiment(MajorityClassifier(), multi_split, config={}, seed=0)


@pytest.fixture
def global_run(multi_split):
    """A multi-label run with one global threshold as its rule (``auto`` records the choose rule)."""
    return run_experiment(MajorityClassifier(), multi_split, config={}, seed=0, rule_strategy="global")


def _jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_predict_unlabelled_jsonl_to_stdout(keyword_run, tmp_path):
    inp = tmp_path / "new.jsonl"
    inp.write_text('{"id": "n1", "text": "apple banana"}\n{"id": "n2", "text": "piston engine"}\n')
    result = runner.invoke(app, ["predict", str(keyword_run.path), str(inp), "--top-k", "2"])
    assert result.exit_code == 0, result.output
    recs = _jsonl(result.stdout)
    assert [r["id"] for r in recs] == ["n1", "n2"]
    assert recs[0]["labels"] == ["fruit"] and recs[1]["labels"] == ["engine"]
    assert list(recs[0]["scores"])[0] == "fruit" and len(recs[0]["scores"]) == 2
    assert "true_labels" not in recs[0]


def test_predict_by_run_name_labelled_input_to_csv(keyword_run, tmp_path, data_dir):
    inp = tmp_path / "in.csv"
    inp.write_text("text,label\nfootball goal,sport\ncherry tart,fruit\n")
    out = tmp_path / "sub" / "pred.csv"
    result = runner.invoke(app, ["predict", keyword_run.name, str(inp), "--out", str(out), "--top-k", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # results went to the file, the summary to stderr
    assert "Wrote 2 predictions" in result.stderr
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id", "labels", "true_labels", "top1", "top1_score"]
    assert rows[1][:4] == ["0", "sport", "sport", "sport"] and rows[2][:3] == ["1", "fruit", "fruit"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]


def test_predict_multi_label_applies_tuned_rule(multi_run, multi_split, tmp_path):
    from nlpkit.metrics import DecisionRule

    inp = tmp_path / "in.txt"  # fastText format without labels
    inp.write_text("alpha beta\ngamma\n")
    out = tmp_path / "pred.jsonl"
    result = runner.invoke(app, ["predict", str(multi_run.path), str(inp), "-o", str(out), "--format", "fasttext"])
    assert result.exit_code == 0, result.output
    recs = _jsonl(out.read_text())
    import numpy as np

    rule = DecisionRule.from_dict(multi_run.info["rule"])
    prior = np.array([[0.5, 0.5, 0.5, 0.0]])
    expected = [n for n, on in zip(["a", "b", "c", "never"], rule.predict(prior)[0]) if on]
    assert [r["labels"] for r in recs] == [expected, expected]
    assert len(recs[0]["scores"]) == 4


def test_predict_json_and_tsv_outputs(keyword_run, tmp_path):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "turbo piston"}\n')
    for name in ("p.json", "p.tsv"):
        result = runner.invoke(app, ["predict", str(keyword_run.path), str(inp), "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p.json").read_text())[0]["labels"] == ["engine"]
    assert (tmp_path / "p.tsv").read_text().splitlines()[1].split("\t")[:2] == ["0", "engine"]


@pytest.mark.parametrize(
    "make_args, fragment",
    [
        (lambda run, tmp: [str(tmp / "nope"), str(tmp / "in.jsonl")], "run not found"),
        (lambda run, tmp: ["no-such-run", str(tmp / "in.jsonl")], "run not found: no-such-run"),
        (lambda run, tmp: [str(tmp), str(tmp / "in.jsonl")], "not a complete run"),
        (lambda run, tmp: [str(run.path), str(tmp / "missing.jsonl")], "file not found"),
        (lambda run, tmp: [str(run.path), str(tmp / "in.jsonl"), "--out", str(tmp / "p.xlsx")], "unknown output type"),
        (lambda run, tmp: [str(run.path), str(tmp / "in.jsonl"), "--out", str(tmp / "in.jsonl")], "is the input file"),
        (lambda run, tmp: [str(run.path), str(tmp / "in.jsonl"), "--text-col", "body"], "column 'body'"),
    ],
    ids=["missing-dir", "missing-name", "not-a-run", "missing-input", "bad-ext", "out-is-input", "bad-text-col"],
)
def test_predict_errors(keyword_run, tmp_path, make_args, fragment):
    (tmp_path / "in.jsonl").write_text('{"text": "apple"}\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, ["predict", *make_args(keyword_run, tmp_path)])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and fragment in result.stderr
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_predict_run_without_model(keyword_run, tmp_path):
    shutil.rmtree(keyword_run.model_dir)
    (tmp_path / "in.jsonl").write_text('{"text": "apple"}\n')
    result = runner.invoke(app, ["predict", str(keyword_run.path), str(tmp_path / "in.jsonl")])
    assert result.exit_code == 1 and "has no model/ folder" in result.stderr


@pytest.fixture
def tfidf_run(single_split):
    from nlpkit.models.tfidf_lr import TfidfLogisticRegression

    return run_experiment(TfidfLogisticRegression(seed=0), single_split, config={}, seed=0)


@pytest.mark.parametrize("size, old", [(0, False), (100, False), (0, True), (100, True)],
                         ids=["empty", "cut", "empty-saved-before-record", "cut-saved-before-record"])
def test_predict_with_a_damaged_model_file_is_a_one_line_error(tfidf_run, tmp_path, size, old):
    # a cut .npz raised BadZipFile with a traceback; an empty one EOFError, which Click printed as
    # a blank line and "Aborted."
    npz = tfidf_run.model_dir / "tfidf_lr.npz"
    with open(npz, "r+b") as fh:
        fh.truncate(size)
    if old:  # as saved before the size/sha256 record: the loader itself must fail cleanly
        meta_file = tfidf_run.model_dir / "nlpkit_model.json"
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        del meta["files"]
        meta_file.write_text(json.dumps(meta), encoding="utf-8")
    (tmp_path / "in.jsonl").write_text('{"text": "apple"}\n')
    result = runner.invoke(app, ["predict", str(tfidf_run.path), str(tmp_path / "in.jsonl")])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: cannot read the tfidf-lr model in ") and result.stderr.count("\n") == 1
    assert "tfidf_lr.npz" in result.stderr and "Re-run the experiment" in result.stderr
    assert "Aborted" not in result.output and "Traceback" not in result.output and result.stdout == ""


def _edit_rule(run, edit):
    info = json.loads((run.path / "run.json").read_text(encoding="utf-8"))
    edit(info)
    (run.path / "run.json").write_text(json.dumps(info), encoding="utf-8")
    from nlpkit.runs import load_run

    return load_run(run.path)


@pytest.mark.parametrize("edit, fragment", [
    (lambda info: info.pop("rule"), "has no decision rule (its 'rule' is missing)"),
    (lambda info: info["rule"].pop("threshold"), "the global_threshold decision rule has lost its tuned threshold(s)"),
    (lambda info: info["rule"].update(threshold="abc"), "the decision rule is damaged (threshold must be a number, "
                                                        "got 'abc')"),
    (lambda info: info.update(rule={"type": "per_label_threshold", "thresholds": [0.5], "global_threshold": 0.5}),
     "the decision rule does not fit the model's 4 labels"),
    (lambda info: info.update(rule={"type": "best"}), "the decision rule is damaged (unknown decision rule type"),
    (lambda info: info.update(rule={"type": "choose", "chosen": "global", "at_least_one": False, "metric": "micro_f1",
                                    "folds": 5, "shrink": 10.0, "seed": 0,
                                    "rule": {"type": "global_threshold", "at_least_one": False}}),
     "the choose decision rule has lost its tuned threshold(s)"),
], ids=["missing", "no-threshold", "threshold-text", "wrong-labels", "unknown-type", "choose-inner-lost"])
def test_recorded_rule_lost_or_damaged_is_an_error_naming_run_json(global_run, edit, fragment):
    # the rule predict must apply: a lost one used to be replaced silently by a fixed 0.5 threshold
    from nlpkit.errors import NlpkitError
    from nlpkit.experiment import recorded_rule
    from nlpkit.metrics import DecisionRule

    assert recorded_rule(global_run, 4) == DecisionRule.from_dict(global_run.info["rule"])
    damaged = _edit_rule(global_run, edit)
    with pytest.raises(NlpkitError) as caught:
        recorded_rule(damaged, 4)
    message = str(caught.value)
    assert message.startswith(str(global_run.path / "run.json")) and fragment in message
    assert message.endswith("re-run the experiment to record it again.")


def test_predict_with_pretrain_run_is_refused(tmp_path):
    from nlpkit.runs import create_run

    with create_run("pretrain", "bert-tiny") as w:
        w.write_json("run.json", {"config": {}})
    (tmp_path / "in.jsonl").write_text('{"text": "apple"}\n')
    result = runner.invoke(app, ["predict", w.name, str(tmp_path / "in.jsonl")])
    assert result.exit_code == 1
    assert "has no model/ folder (pretrain run)" in result.stderr


def test_predict_interrupted_run(keyword_run, tmp_path):
    tmp_run = keyword_run.path.parent / f".tmp-{keyword_run.name}x"
    shutil.copytree(keyword_run.path, tmp_run)
    (tmp_path / "in.jsonl").write_text('{"text": "apple"}\n')
    result = runner.invoke(app, ["predict", str(tmp_run), str(tmp_path / "in.jsonl")])
    assert result.exit_code == 1 and "unfinished run" in result.stderr


# --- nlpkit runs --------------------------------------------------------------------------------

@pytest.fixture
def wide_console(monkeypatch):
    """A wide stdout console, so table cells are not truncated under CliRunner's 80 columns."""
    from rich.console import Console

    from nlpkit.cli import _common

    monkeypatch.setattr(_common, "_out_console", Console(width=250, soft_wrap=True))


def test_runs_lists_complete_runs(keyword_run, multi_run, runs_dir, wide_console):
    (runs_dir / f".tmp-{keyword_run.name}-killed").mkdir()
    result = runner.invoke(app, ["runs", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == sorted([keyword_run.name, multi_run.name])
    by_model = {r["model"]: r for r in rows}
    assert by_model["fake-keyword"]["metric"] == "accuracy"
    assert by_model["fake-keyword"]["value"] == pytest.approx(0.75)
    assert by_model["majority"]["metric"] == "micro_f1" and by_model["majority"]["split"] == "multi_split"

    assert "1 unfinished run folder(s)" in result.stderr
    table = runner.invoke(app, ["runs"])
    assert table.exit_code == 0
    assert keyword_run.name in table.stdout and "accuracy 0.7500" in table.stdout and "killed" not in table.stdout


def test_runs_kind_filter_and_runs_dir(keyword_run, tmp_path):
    result = runner.invoke(app, ["runs", "--kind", "finetune", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    empty = runner.invoke(app, ["runs", "--runs-dir", str(tmp_path / "elsewhere")])
    assert empty.exit_code == 0 and "No complete runs" in empty.stderr and empty.stdout == ""


@pytest.mark.parametrize("args, fragment", [
    (["--kind", "train"], "unknown run kind 'train' for --kind"),
    (["--runs-dir", "FILE"], "is a file"),
])
def test_runs_errors(args, fragment, tmp_path):
    (tmp_path / "FILE").write_text("x")
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    result = runner.invoke(app, ["runs", *args])
    assert result.exit_code == 1 and fragment in result.stderr


@pytest.mark.parametrize("edit, fragment", [
    (lambda info: info.pop("rule"), "run.json has no decision rule"),
    (lambda info: info["rule"].pop("threshold"), "run.json: the global_threshold decision rule has lost its tuned"),
    (lambda info: info["rule"].update(threshold="abc"), "run.json: the decision rule is damaged (threshold must be a "
                                                        "number, got 'abc')"),
])
def test_predict_with_a_lost_or_damaged_rule_is_an_error_naming_run_json(global_run, tmp_path, edit, fragment):
    # a lost rule used to predict with rc 0 under a fixed 0.5 threshold
    _edit_rule(global_run, edit)
    (tmp_path / "in.jsonl").write_text('{"text": "alpha"}\n')
    result = runner.invoke(app, ["predict", str(global_run.path), str(tmp_path / "in.jsonl")])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1 and fragment in result.stderr
    assert "re-run the experiment" in result.stderr and result.stdout == ""

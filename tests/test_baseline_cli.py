"""`nlpkit baseline`: runs recorded per model, the table / JSON, and one test per bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import make_dataset
from nlpkit.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["baseline", *map(str, args)])


def test_majority_and_tfidf_json(multi_split, runs_dir):
    result = invoke(multi_split.path, "--model", "majority", "--model", "tfidf-lr", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["model"] for r in rows] == ["majority", "tfidf-lr"]
    for row in rows:
        assert row["task"] == "multi" and 0 <= row["micro_f1"] <= 1
        run_json = json.loads((runs_dir / row["run"].split("/")[-1] / "run.json").read_text())
        assert run_json["kind"] == "baseline" and run_json["config"]["command"] == "baseline"
    # the label "never" occurs in test only: reported, scored as a miss, not a crash
    assert "never in train" in result.stderr


def test_table_lists_every_default_model(single_split, runs_dir):
    result = invoke(single_split.path, "--seed", "3")
    assert result.exit_code == 0, result.output
    for name in ("majority", "tfidf-lr", "fasttext", "word2vec"):
        assert name in result.stdout
    assert "accuracy" in result.stdout and "macro-F1" in result.stdout
    runs = sorted(p for p in runs_dir.iterdir() if not p.name.startswith("."))
    assert len(runs) == 4
    assert {json.loads((p / "run.json").read_text())["seed"] for p in runs} == {3}


def test_piped_table_keeps_each_row_on_one_line(multi_split, runs_dir, monkeypatch):
    # rich assumes 80 columns when stdout is not a terminal and would wrap the run names
    from nlpkit.cli import _common

    monkeypatch.setattr(_common, "_out_console", None)
    monkeypatch.setenv("COLUMNS", "80")
    result = invoke(multi_split.path, "-m", "majority")
    assert result.exit_code == 0, result.output
    run = next(p.name for p in runs_dir.iterdir() if not p.name.startswith("."))
    assert any("majority" in line and run in line for line in result.stdout.splitlines()), result.stdout


def test_rule_option_reaches_the_run(multi_split, runs_dir):
    result = invoke(multi_split.path, "-m", "tfidf-lr", "--rule", "global", "--json")
    assert result.exit_code == 0, result.output
    run_json = json.loads((runs_dir / json.loads(result.stdout)[0]["run"].split("/")[-1] / "run.json").read_text())
    assert run_json["rule"]["type"] == "global_threshold" and run_json["config"]["rule_strategy"] == "global"


def test_tune_records_the_choice(single_split, runs_dir):
    result = invoke(single_split.path, "-m", "tfidf-lr", "--tune", "--cv", "2", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)[0]["fit_info"]
    assert info["tuning"]["selected_by"] == "2-fold cross-fit on train + valid" and "C" in info


def test_single_class_training_data_warns_and_predicts_it(make_split):
    texts = ["red apple", "green apple", "apple pie", "apple tart", "apple jam", "baked apple"]
    train = make_dataset(texts, ["fruit"] * 6, task="single", label_names=["fruit", "veg"])
    valid = make_dataset(["apple cake"], ["fruit"], task="single", label_names=["fruit", "veg"])
    test = make_dataset(["apple crumble", "carrot soup"], ["fruit", "veg"], task="single", label_names=["fruit", "veg"])
    split = make_split({"train": train, "valid": valid, "test": test}, "one_class")
    result = invoke(split.path, "-m", "tfidf-lr", "--json")
    assert result.exit_code == 0, result.output
    assert "always predicts" in result.stderr
    assert json.loads(result.stdout)[0]["accuracy"] == pytest.approx(0.5)


def test_texts_without_words_word2vec_is_a_clear_error(make_split):
    train = make_dataset(["!!!", "???", "...", "!?"], ["a", "b", "a", "b"], task="single")
    split = make_split({"train": train, "valid": train, "test": train}, "no_words")
    result = invoke(split.path, "-m", "word2vec")
    assert result.exit_code == 1
    assert "Error: word2vec: every training text is empty after tokenisation" in result.stderr
    assert "Traceback" not in result.output


def test_pretrained_vectors(single_split, tmp_path):
    words = ["apple", "banana", "engine", "piston", "football", "goal"]
    rng = np.random.default_rng(0)
    path = tmp_path / "vectors.txt"
    path.write_text(f"{len(words)} 3\n" + "".join(f"{w} {' '.join(map(str, rng.normal(size=3).round(3)))}\n" for w in words))
    result = invoke(single_split.path, "-m", "word2vec", "--vectors", path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["fit_info"]["dim"] == 3


# --- bad input: one line on stderr, exit 1, nothing recorded -------------------------------------

def _no_train_split(make_split, single_parts):
    split = make_split(single_parts, "no_train")
    manifest = json.loads((split.path / "split.json").read_text())
    del manifest["parts"]["train"]
    (split.path / "split.json").write_text(json.dumps(manifest))
    (split.path / "train.jsonl").unlink()
    return split.path


@pytest.mark.parametrize("case, args, message", [
    ("no-train", [], "has no train part"),
    ("missing", [], "split folder not found"),
    ("ok", ["-m", "transformer"], "unknown baseline model transformer (fine-tune transformers with `nlpkit finetune`)"),
    ("ok", ["-m", "svm"], "unknown baseline model svm"),
    ("ok", ["--cv", "3"], "--cv only applies to --tune"),
    ("ok", ["--tune", "--cv", "1"], "--cv must be at least 2 folds"),
    ("ok", ["--tune-seconds", "5"], "--tune-seconds only applies to --tune"),
    ("ok", ["--tune", "-m", "majority"], "--tune applies to tfidf-lr and fasttext"),
    ("ok", ["-m", "tfidf-lr", "--vectors", "VEC_OK"], "--vectors is only used by the word2vec model"),
    ("ok", ["-m", "word2vec", "--vectors", "VEC_MISSING"], "vectors file not found"),
    ("ok", ["-m", "word2vec", "--vectors", "VEC_JUNK"], "is not a word-vector file nlpkit can read"),
    ("ok", ["-m", "word2vec", "--vectors", "VEC_PICKLE"], "is a pickled gensim file"),
    ("ok", ["-m", "word2vec", "--vectors", "VEC_RAGGED"], "check that every row has 3 numbers"),
    ("ok", ["--rule", "best"], "unknown --rule 'best'"),
    ("ok", ["-m", "majority", "--rule", "global"], "--rule global is for multi-label data"),
])
def test_bad_input(case, args, message, make_split, single_parts, single_split, tmp_path, runs_dir):
    vec_files = {
        "VEC_OK": "2 3\napple 1 2 3\nbanana 3 2 1\n",
        "VEC_JUNK": "hello world\nnot vectors\n",
        "VEC_RAGGED": "2 3\napple 1 2 3\nbanana 3 2\n",
    }
    resolved = []
    for a in args:
        if a == "VEC_PICKLE":
            (tmp_path / "v.kv").write_bytes(b"\x80\x04\x95gensim")
            a = tmp_path / "v.kv"
        elif a == "VEC_MISSING":
            a = tmp_path / "nope.bin"
        elif a in vec_files:
            (tmp_path / f"{a}.txt").write_text(vec_files[a])
            a = tmp_path / f"{a}.txt"
        resolved.append(a)
    split_dir = {"no-train": lambda: _no_train_split(make_split, single_parts),
                 "missing": lambda: tmp_path / "nowhere",
                 "ok": lambda: single_split.path}[case]()
    result = invoke(split_dir, *resolved)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ")
    assert message.lower() in result.stderr.lower()
    assert "Traceback" not in result.output
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if not p.name.startswith(".")]


def test_bench_skips_without_shared_data(monkeypatch, tmp_path, capsys):
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("baseline_bench", REPO / "bench" / "baseline_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "DATA", tmp_path / "absent")
    assert bench.main([]) == 0
    assert "skipped" in capsys.readouterr().out

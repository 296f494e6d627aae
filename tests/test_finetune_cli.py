"""`nlpkit finetune` end to end on bundled samples with a tiny local BERT, and every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("transformers")

from nlpkit.cli import app  # noqa: E402
from test_finetune import break_checkpoint, edit_config, make_tiny_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()
FAST = ["--epochs", "1", "--max-length", "32", "--batch-size", "8", "--lr", "1e-3", "--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("cli-ckpt") / "tiny-bert")


def _split(path: Path, name: str, parts: dict[str, tuple[int, int]]):
    from nlpkit.data import read_dataset, write_split

    ds = read_dataset(REPO / "data" / name)
    return write_split(path, {part: ds.subset(np.arange(a, b)) for part, (a, b) in parts.items()},
                       {"seed": 0, "source": name})


@pytest.fixture(scope="module")
def reuters_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    return _split(root / "reuters", "reuters_sample.jsonl", {"train": (0, 80), "valid": (80, 100), "test": (100, 130)}).path


@pytest.fixture(scope="module")
def agnews_split_without_valid(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    return _split(root / "agnews", "agnews_sample.jsonl", {"train": (0, 60), "test": (60, 80)}).path


def invoke(*args):
    return runner.invoke(app, ["finetune", *map(str, args)])


def no_runs(runs_dir: Path) -> bool:
    return not runs_dir.exists() or not any(runs_dir.iterdir())


def test_finetune_multi_label_records_a_scored_run_usable_by_predict(ckpt, reuters_split, runs_dir, tmp_path):
    from nlpkit.runs import list_runs

    result = invoke(reuters_split, "--model", ckpt, *FAST, "--name", "tiny-reuters", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    runs = list_runs(runs_dir)
    assert [r.name for r in runs] == [summary["run"]]
    run = runs[0]
    assert run.kind == "finetune" and run.model == "transformer"
    assert run.info["config"]["name"] == "tiny-reuters" and run.info["config"]["model"] == str(ckpt)
    assert run.info["base_model"]["model_type"] == "bert"
    fit, timings = run.info["fit_info"], run.info["timings"]
    assert fit["train_seconds"] > 0 and "predict_docs_per_s_batch1" not in fit  # timed once, on test, by the run
    assert timings["predict_docs_per_s_batch1"] > 0 and timings["predict_docs_per_s_batch32"] > 0
    assert summary["predict_docs_per_s_batch1"] == timings["predict_docs_per_s_batch1"]
    assert run.info["model_size_bytes"] > 0 and run.info["timings"]["predict_docs_per_s"] > 0
    assert 0 <= summary["test"]["micro_f1"] <= 1
    ids, scores, pred = run.predictions()
    assert scores.shape == (30, len(run.info["data"]["label_names"]))
    # the run's model works with the generic `nlpkit predict`
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "a", "text": "Wheat exports rose sharply"}\n{"id": "b", "text": "Net profit per share"}\n')
    pred_result = runner.invoke(app, ["predict", run.name, str(docs), "--runs-dir", str(runs_dir)])
    assert pred_result.exit_code == 0, pred_result.output
    records = [json.loads(line) for line in pred_result.stdout.splitlines()]
    assert [r["id"] for r in records] == ["a", "b"]
    assert all(set(r["scores"]) <= set(run.info["data"]["label_names"]) for r in records)


def test_finetune_single_label_carves_valid_when_the_split_has_none(ckpt, agnews_split_without_valid, runs_dir):
    from nlpkit.runs import list_runs

    result = invoke(agnews_split_without_valid, "--model", ckpt, *FAST, "--long-text", "head-tail", "--json")
    assert result.exit_code == 0, result.output
    run = list_runs(runs_dir)[0]
    assert run.info["config"]["valid_carved_from_train"] is True
    assert run.info["config"]["long_text"] == "head-tail"
    assert run.info["data"]["n_valid"] >= 1 and run.info["data"]["n_train"] + run.info["data"]["n_valid"] == 60
    assert "accuracy" in json.loads(result.stdout)["test"]


def test_labels_only_in_test_are_reported_and_scored_as_misses(ckpt, tmp_path, runs_dir):
    from nlpkit.data import read_dataset, write_split
    from nlpkit.runs import list_runs

    ds = read_dataset(REPO / "data" / "agnews_sample.jsonl")
    names = ds.label_names
    rare = names[-1]
    col = names.index(rare)
    has_rare = np.asarray(ds.y[:, col].todense()).ravel() > 0
    train_idx = np.flatnonzero(~has_rare)[:40]
    test_idx = np.concatenate([np.flatnonzero(~has_rare)[40:50], np.flatnonzero(has_rare)[:5]])
    split = write_split(tmp_path / "s", {"train": ds.subset(train_idx), "test": ds.subset(test_idx)}, {"seed": 0})
    result = invoke(split.path, "--model", ckpt, *FAST)
    assert result.exit_code == 0, result.output
    assert "never in train" in result.stderr and rare in result.stderr
    run = list_runs(runs_dir)[0]
    assert run.info["labels_unseen_in_train"] == [rare]
    per_label = {r["label"]: r for r in run.metrics()["test"]["per_label"]}
    assert per_label[rare]["support"] == 5 and per_label[rare]["recall"] == 0.0


def test_head_with_another_number_of_labels_warns_on_stderr(tmp_path, reuters_split, runs_dir):
    seven = make_tiny_checkpoint(tmp_path / "seven", num_labels=7)
    result = invoke(reuters_split, "--model", seven, *FAST)
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.stderr and "another number of labels" in result.stderr
    assert "re-initialised" in result.stderr
    assert result.stderr.count("another number of labels") == 1  # reported once, not once per layer


@pytest.mark.parametrize("case,fragment", [
    ("missing", "--model folder not found"),
    ("file", "--model must be a folder"),
    ("no-config", "no config.json in"),
    ("no-weights", "no model weights in"),
    ("no-tokenizer", "no tokenizer in"),
])
def test_bad_model_folder_is_one_line_error(case, fragment, ckpt, reuters_split, tmp_path, runs_dir):
    target = tmp_path / "bad"
    if case == "file":
        target.write_text("not a model")
    elif case != "missing":
        shutil.copytree(ckpt, target)
        {"no-config": target / "config.json", "no-weights": target / "model.safetensors",
         "no-tokenizer": target / "tokenizer.json"}[case].unlink()
    result = invoke(reuters_split, "--model", target, *FAST)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    if case == "no-weights":
        assert "model.safetensors" in result.stderr
    if case == "no-tokenizer":
        assert "tokenizer.json" in result.stderr
    assert no_runs(runs_dir)


@pytest.mark.parametrize("extra,fragment", [
    (["--long-text", "middle"], "--long-text must be one of"),
    (["--chunk-stride", "8"], "--chunk-stride only applies with --long-text chunks"),
    (["--long-text", "chunks", "--pool", "median"], "--pool must be mean or max"),
    (["--layer-decay", "0"], "--layer-decay must be in (0, 1]"),
    (["--warmup", "1.5"], "--warmup is a fraction"),
    (["--long-text", "chunks", "--chunk-stride", "40"], "--chunk-stride (tokens shared"),
    (["--device", "tpu"], "--device must be"),
    (["--max-length", "600"], "--max-length 600 exceeds the 512 positions"),
])
def test_bad_options_fail_before_any_work(extra, fragment, ckpt, reuters_split, runs_dir):
    result = invoke(reuters_split, "--model", ckpt, *FAST, *extra)
    assert result.exit_code == 1, result.output
    assert fragment in result.stderr and "Traceback" not in result.output
    assert no_runs(runs_dir)


def test_bad_split_folder_is_one_line_error(ckpt, tmp_path, runs_dir):
    result = invoke(tmp_path / "no-split", "--model", ckpt, *FAST)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "no-split" in result.stderr
    assert no_runs(runs_dir)


def test_kfold_split_needs_a_fold(ckpt, tmp_path, runs_dir):
    from nlpkit.data import read_dataset, write_split

    ds = read_dataset(REPO / "data" / "reuters_sample.jsonl")
    idx = np.arange(60)
    split = write_split(tmp_path / "kfold", {f"fold{k}": ds.subset(idx[k::2]) for k in range(2)}, {})
    result = invoke(split.path, "--model", ckpt, *FAST)
    assert result.exit_code == 1 and "is a k-fold split: choose a fold with --fold N (0..1)" in result.stderr
    assert no_runs(runs_dir)
    result = invoke(split.path, "--model", ckpt, *FAST, "--fold", "1", "--json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert json.loads((Path(run["path"]) / "run.json").read_text())["data"]["fold"] == 1


def test_python_api_returns_the_run(ckpt, reuters_split, runs_dir):
    from nlpkit.finetune import finetune

    run = finetune(reuters_split, ckpt, seed=2, epochs=1, max_length=32, batch_size=8, lr=1e-3, threads=1,
                   device="cpu", long_text="chunks", max_chunks=2, pool="max")
    assert run.kind == "finetune" and run.path.parent == runs_dir
    assert run.info["model_params"]["long_text"] == "chunks" and run.info["seed"] == 2
    assert (run.model_dir / "nlpkit_model.json").is_file()


@pytest.mark.slow
def test_pretrain_then_finetune_end_to_end(reuters_split, tmp_path, runs_dir):
    """Our own tiny pretrained encoder -> fine-tuned -> scored run, all on bundled data."""
    from nlpkit.runs import list_runs

    encoder = tmp_path / "encoder"
    result = runner.invoke(app, ["pretrain", str(REPO / "data" / "reuters_sample.jsonl"), "--out", str(encoder),
                                 "--size", "tiny", "--steps", "5", "--vocab-size", "500", "--threads", "1",
                                 "--eval-every", "5", "--save-every", "5", "--max-length", "64"])
    assert result.exit_code == 0, result.output
    result = invoke(reuters_split, "--model", encoder, *FAST, "--json")
    assert result.exit_code == 0, result.output
    runs = list_runs(runs_dir, kind="finetune")
    assert len(runs) == 1
    assert runs[0].info["base_model"]["path"] == str(encoder.resolve())
    assert json.loads(result.stdout)["run"] == runs[0].name


def _bigger_tokenizer(folder: Path, tmp_path: Path) -> None:
    bigger = make_tiny_checkpoint(tmp_path / "bigger", vocab_size=800)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(bigger / name, folder / name)


@pytest.mark.parametrize("case,fragment", [
    ("other-sizes", "have other shapes in the weights"),
    ("other-architecture", "are missing from the weights"),
    ("bigger-tokenizer", "but the model's embeddings have only"),
    ("bad-json", "config.json:1:"),
    ("truncated-weights", "copy the checkpoint folder again"),
])
def test_checkpoint_that_would_silently_start_from_random_weights_is_refused(case, fragment, ckpt, reuters_split,
                                                                             tmp_path, runs_dir):
    target = tmp_path / "bad"
    shutil.copytree(ckpt, target)
    if case == "bigger-tokenizer":
        _bigger_tokenizer(target, tmp_path)
    else:
        break_checkpoint(target, case, layers=2)
    result = invoke(reuters_split, "--model", target, *FAST)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and fragment in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert no_runs(runs_dir)


def test_a_head_trained_for_other_labels_is_replaced_with_a_warning(tmp_path, reuters_split, runs_dir):
    from nlpkit.data import load_split

    n = len(load_split(reuters_split).label_names)
    other = make_tiny_checkpoint(tmp_path / "other", num_labels=n)
    edit_config(other, id2label={str(i): f"topic-{i}" for i in range(n)},
                 label2id={f"topic-{i}": i for i in range(n)})
    result = invoke(reuters_split, "--model", other, *FAST)
    assert result.exit_code == 0, result.output
    assert "was trained for other labels (topic-0, topic-1" in result.stderr and "re-initialised" in result.stderr


def test_reinitialised_head_is_fresh_and_the_encoder_kept(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from nlpkit.models.transformer import _reinit_head

    folder = make_tiny_checkpoint(tmp_path / "c", num_labels=3)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    encoder = {k: v.clone() for k, v in model.bert.state_dict().items()}
    head = model.classifier.weight.detach().clone()
    torch.manual_seed(1)
    _reinit_head(model)
    assert not torch.equal(model.classifier.weight, head) and float(model.classifier.bias.detach().abs().sum()) == 0.0
    assert all(torch.equal(v, encoder[k]) for k, v in model.bert.state_dict().items())


def test_unfinished_pretraining_warns(ckpt, reuters_split, tmp_path, runs_dir):
    target = tmp_path / "unfinished"
    shutil.copytree(ckpt, target)
    (target / "pretrain.json").write_text(json.dumps({"status": "training"}), encoding="utf-8")
    result = invoke(reuters_split, "--model", target, *FAST)
    assert result.exit_code == 0, result.output
    assert "unfinished pretraining" in result.stderr and "--resume" in result.stderr


def test_max_length_defaults_to_the_checkpoints_positions_and_budgets_take_durations(tmp_path, reuters_split,
                                                                                     runs_dir):
    from nlpkit.runs import list_runs

    short = make_tiny_checkpoint(tmp_path / "short", positions=64)
    args = [a for a in FAST if a not in ("--max-length", "32")]
    result = invoke(reuters_split, "--model", short, *args, "--time-budget", "1m")
    assert result.exit_code == 0, result.output
    config = list_runs()[0].info["config"]
    assert config["max_length"] == 64 and config["time_budget"] == 60.0
    result = invoke(reuters_split, "--model", short, *FAST, "--time-budget", "soon")
    assert result.exit_code == 1 and "--time-budget 'soon' is not a duration" in result.stderr


def test_predict_refuses_a_run_whose_model_lost_its_tokenizer(ckpt, reuters_split, runs_dir, tmp_path):
    from nlpkit.runs import list_runs

    assert invoke(reuters_split, "--model", ckpt, *FAST).exit_code == 0
    run = list_runs()[0].path
    for f in (run / "model").glob("tokenizer*"):
        f.unlink()
    (tmp_path / "new.jsonl").write_text('{"id": "1", "text": "oil prices rose"}\n', encoding="utf-8")
    result = runner.invoke(app, ["predict", str(run), str(tmp_path / "new.jsonl")])
    assert result.exit_code == 1 and "tokenizer" in result.stderr and "Traceback" not in result.output, result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_single_training_label_warns(ckpt, tmp_path, runs_dir):
    from nlpkit.data import read_dataset, write_split

    ds = read_dataset(REPO / "data" / "agnews_sample.jsonl")
    first = np.asarray(ds.y[:, 0].todense()).ravel() > 0
    idx = np.flatnonzero(first)
    split = write_split(tmp_path / "s", {"train": ds.subset(idx[:30]), "test": ds.subset(idx[30:40])}, {"seed": 0})
    result = invoke(split.path, "--model", ckpt, *FAST)
    assert result.exit_code == 0, result.output
    assert f"every training document has the label '{ds.label_names[0]}'" in result.stderr


def test_a_run_that_learns_nothing_says_so(ckpt, reuters_split, runs_dir):
    # learning rates so small that nothing moves: the guardrails name it on stderr and in run.json
    from nlpkit.runs import list_runs

    args = ["--epochs", "2", "--max-length", "32", "--batch-size", "8", "--lr", "1e-12", "--head-lr", "1e-12",
            "--threads", "1", "--device", "cpu"]
    result = invoke(reuters_split, "--model", ckpt, *args)
    assert result.exit_code == 0, result.output
    assert "the training loss barely moved" in " ".join(result.stderr.split())
    info = json.loads((list_runs()[0].path / "run.json").read_text(encoding="utf-8"))
    assert any(w.startswith("the training loss barely moved") for w in info["warnings"])


@pytest.mark.parametrize("long_text, warned", [("truncate", True), ("head-tail", False)])
def test_most_documents_cut_at_max_length_is_named_with_the_alternatives(ckpt, reuters_split, runs_dir,
                                                                          long_text, warned):
    args = [a if a != "32" else "16" for a in FAST]  # 16 tokens: nearly every Reuters story is longer
    result = invoke(reuters_split, "--model", ckpt, *args, "--long-text", long_text)
    assert result.exit_code == 0, result.output
    assert ("are cut to their start" in " ".join(result.stderr.split())) is warned
    from nlpkit.runs import list_runs

    lengths = list_runs(runs_dir)[0].info["fit_info"]["train_tokens_per_doc"]
    assert lengths["p50"] <= lengths["p95"] <= lengths["p99"] <= 16  # recorded, at most --max-length

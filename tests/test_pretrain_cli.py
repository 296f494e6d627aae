"""`nlpkit pretrain` on the command line: a real (micro) run, and every bad input as one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nlpkit.cli import app
from test_finetune import break_checkpoint

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()
MICRO = ["--layers", "1", "--hidden", "32", "--heads", "2", "--vocab-size", "600", "--max-length", "32",
         "--batch-size", "4", "--steps", "4", "--eval-every", "2", "--save-every", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """300 Reuters documents as a plain-text corpus (one per line)."""
    path = tmp_path_factory.mktemp("cli-corpus") / "docs.txt"
    with open(REPO / "data" / "reuters_sample.jsonl", encoding="utf-8") as fh:
        lines = [" ".join(json.loads(line)["text"].split()) for _, line in zip(range(300), fh)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> Path:
    """A finished micro run (HF folder + checkpoint), trained once through the CLI."""
    out = tmp_path_factory.mktemp("cli-run") / "model"
    runs = out.parent / "runs"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--runs-dir", str(runs), *MICRO])
    assert result.exit_code == 0, result.output
    assert "held-out MLM loss" in result.output
    return out


def copy_of(trained: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(trained, dst)
    return dst


def test_cli_run_writes_a_loadable_folder_a_report_and_a_run(trained):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    assert (trained / "config.json").exists() and (trained / "model.safetensors").exists()
    assert (trained / "last" / "model.safetensors").exists()
    assert (trained / "checkpoints" / "checkpoint.safetensors").exists()
    rep = json.loads((trained / "pretrain.json").read_text())
    assert rep["steps"] == 4 and rep["config"]["layers"] == 1 and rep["config"]["size"] == "mini"
    assert rep["corpus"]["documents"] > 0 and rep["corpus"]["words"] > 0 and rep["corpus"]["characters"] > 0
    assert AutoModelForMaskedLM.from_pretrained(trained).config.hidden_size == 32
    assert len(AutoTokenizer.from_pretrained(trained)) == 600
    runs = list((trained.parent / "runs").iterdir())
    assert len(runs) == 1 and json.loads((runs[0] / "run.json").read_text())["kind"] == "pretrain"


def test_json_output_and_compare_tokenizer(corpus, trained, tmp_path):
    out = tmp_path / "j"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--json", "--compare-tokenizer",
                                 str(trained), *MICRO[:-6], "--steps", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["steps"] == 1
    ref = summary["tokenizer"]["reference"]
    # same corpus and options: the same tokenizer, so the same fertility
    assert ref["vocab_size"] == 600
    ours = summary["tokenizer"]["heldout"]
    assert {k: v for k, v in ref.items() if k != "path"} == {k: v for k, v in ours.items() if k in ref}


def test_tokenizer_option_reuses_a_tokenizer(corpus, trained, tmp_path):
    from transformers import AutoTokenizer

    out = tmp_path / "t"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--tokenizer", str(trained),
                                 *MICRO[:-6], "--steps", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(trained).get_vocab()


def test_resume_continues_to_more_steps_with_options_from_the_checkpoint(trained, tmp_path):
    out = copy_of(trained, tmp_path)
    result = runner.invoke(app, ["pretrain", "IGNORED", "--out", str(out), "--resume", "--steps", "6"])
    # the corpus argument must match the checkpoint's: a different one is named in the error
    assert result.exit_code == 1
    assert "--corpus is 'IGNORED' but the checkpoint" in result.output
    corpus = json.loads((out / "pretrain_config.json").read_text())["corpus"]
    result = runner.invoke(app, ["pretrain", corpus, "--out", str(out), "--resume", "--steps", "6"])
    assert result.exit_code == 0, result.output
    assert "resumed from step 4" in result.output
    assert json.loads((out / "pretrain.json").read_text())["steps"] == 6


def test_resume_with_a_disagreeing_option_names_it(corpus, trained, tmp_path):
    out = copy_of(trained, tmp_path)
    before = (out / "checkpoints" / "checkpoint.safetensors").read_bytes()
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--resume", "--lr", "0.5"])
    assert result.exit_code == 1
    assert "Error: --resume: --lr is 0.5 but the checkpoint" in result.output
    assert "Traceback" not in result.output
    assert (out / "checkpoints" / "checkpoint.safetensors").read_bytes() == before


def test_corrupt_checkpoint_is_one_line_and_nothing_is_lost(corpus, trained, tmp_path):
    out = copy_of(trained, tmp_path)
    ckpt = out / "checkpoints" / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated, as after a crash outside our atomic save
    weights = (out / "model.safetensors").read_bytes()
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--resume"])
    assert result.exit_code == 1
    assert "is unreadable or not an nlpkit state file" in result.output and "--overwrite" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert ckpt.read_bytes() == ckpt.read_bytes() and len(ckpt.read_bytes()) == 100
    assert (out / "model.safetensors").read_bytes() == weights


def test_existing_out_needs_resume_or_overwrite(corpus, trained, tmp_path):
    out = copy_of(trained, tmp_path)
    listing = sorted(p.name for p in out.iterdir())
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), *MICRO])
    assert result.exit_code == 1
    assert "already exists" in result.output and "--resume" in result.output and "--overwrite" in result.output
    assert sorted(p.name for p in out.iterdir()) == listing
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--resume", "--overwrite"])
    assert result.exit_code == 1 and "not both" in result.output


def test_overwrite_replaces_the_folder(corpus, trained, tmp_path):
    out = copy_of(trained, tmp_path)
    (out / "stale.txt").write_text("old")
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--overwrite", *MICRO[:-6],
                                 "--steps", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert not (out / "stale.txt").exists() and json.loads((out / "pretrain.json").read_text())["steps"] == 1


def test_vocab_too_large_for_the_corpus(corpus, tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("\n".join(corpus.read_text().splitlines()[:5]) + "\n")
    out = tmp_path / "o"
    result = runner.invoke(app, ["pretrain", str(small), "--out", str(out), "--vocab-size", "30000"])
    assert result.exit_code == 1
    assert "corpus too small for --vocab-size 30000" in result.output and "use --vocab-size" in result.output
    assert not out.exists()


@pytest.mark.parametrize("args, fragment", [
    (["--max-length", "100000000"], "--max-length 100000000 is out of range"),
    (["--max-length", "16384"], "--max-length 16384 is too long for --arch bert"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--time-budget", "soon"], "--time-budget 'soon' is not a duration"),
    (["--size", "giant"], "--size 'giant' is unknown"),
    (["--schedule", "step"], "--schedule 'step' is unknown"),
    (["--threads", "-3"], "--threads must be >= 1"),
    (["--steps", "10", "--warmup", "20"], "--warmup 20 steps is not shorter than --steps 10"),
    (["--layers", "1000", "--hidden", "65536", "--heads", "1", "--vocab-size", "600", "--max-length", "32"],
     "a 1000x65536 model with a 600-token vocabulary has"),
])
def test_bad_options_are_rejected_before_any_work(corpus, tmp_path, args, fragment):
    out = tmp_path / "o"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), *args])
    assert result.exit_code == 1, result.output
    assert f"Error: {fragment}" in result.output
    assert not out.exists()


def test_max_length_beyond_init_from_positions(corpus, trained, tmp_path):
    out = tmp_path / "o"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--init-from", str(trained),
                                 "--max-length", "64", "--steps", "1"])
    assert result.exit_code == 1
    assert "--max-length 64 exceeds the 32 positions of --init-from" in result.output


def test_init_from_continues_pretraining(corpus, trained, tmp_path):
    out = tmp_path / "o"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--init-from", str(trained),
                                 "--max-length", "32", "--batch-size", "4", "--steps", "2", "--threads", "1",
                                 "--layers", "1", "--hidden", "32", "--heads", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "pretrain.json").read_text())["tokenizer"]["vocab_size"] == 600


def test_missing_corpus(tmp_path):
    result = runner.invoke(app, ["pretrain", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "corpus not found" in result.output


@pytest.mark.parametrize("case, fragment", [
    ("batch", "fewer than one batch"),
    ("reference", "tokenizer folder not found"),
    ("runs-dir", "cannot create runs folder"),
])
def test_a_failure_before_training_leaves_out_as_it_was(corpus, tmp_path, case, fragment):
    out = tmp_path / "new" / "deeper" / "o"
    args = {"batch": ["--batch-size", "100000"], "reference": ["--compare-tokenizer", str(tmp_path / "nope")],
            "runs-dir": ["--runs-dir", str(corpus)]}[case]
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), *MICRO, *args])
    assert result.exit_code == 1 and fragment in result.output, result.output
    assert "Traceback" not in result.output and "\n\nError:" not in "\n" + result.output  # no empty bar line
    assert not (tmp_path / "new").exists()  # nor the parents it would have made


def test_overwrite_that_fails_before_training_keeps_the_old_model(corpus, trained, tmp_path):
    out = copy_of(trained, tmp_path)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--overwrite", *MICRO,
                                 "--batch-size", "100000"])
    assert result.exit_code == 1 and "fewer than one batch" in result.output
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no folder left aside


def test_resume_of_a_finished_run_has_nothing_to_do(corpus, trained, tmp_path):
    out = copy_of(trained, tmp_path)
    report = (out / "pretrain.json").read_bytes()
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output and "4 steps" in result.output
    assert (out / "pretrain.json").read_bytes() == report


def test_interrupt_says_whether_there_is_a_checkpoint_to_resume(trained, tmp_path):
    from nlpkit.cli.pretrain import _resume_hint

    assert _resume_hint(tmp_path / "nothing") is None
    out = copy_of(trained, tmp_path)
    assert _resume_hint(out) == f"{out} keeps the last checkpoint; continue with the same command plus --resume."
    (out / "checkpoints" / "checkpoint.safetensors").unlink()
    assert "no checkpoint yet, so training restarts at step 0" in _resume_hint(out)


@pytest.mark.parametrize("case, fragment", [
    ("other-sizes", "have other shapes in the weights"),
    ("other-architecture", "are missing from the weights"),
    ("no-tokenizer", "no tokenizer in"),
    ("truncated-weights", "copy the checkpoint folder again"),
])
def test_init_from_a_broken_checkpoint_is_one_line(corpus, trained, tmp_path, case, fragment):
    source = copy_of(trained, tmp_path)
    break_checkpoint(source, case, layers=1)
    out = tmp_path / "o"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--init-from", str(source),
                                 "--max-length", "32", "--steps", "1"])
    assert result.exit_code == 1 and fragment in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_a_corpus_byte_that_is_not_utf8_is_named_with_its_line(corpus, tmp_path):
    bad = tmp_path / "latin.txt"
    bad.write_bytes(corpus.read_bytes()[:2000].rsplit(b"\n", 1)[0] + b"\ncaf\xe9 prices rose\n")
    line = bad.read_bytes().count(b"\n")
    result = runner.invoke(app, ["pretrain", str(bad), "--out", str(tmp_path / "o"), *MICRO])
    assert result.exit_code == 1 and f"(line {line})" in result.output and "--encoding latin-1" in result.output
    assert not (tmp_path / "o").exists()


def test_resume_from_an_old_pickled_checkpoint_is_refused_without_loading_it(corpus, trained, tmp_path):
    out = copy_of(trained, tmp_path)
    (out / "checkpoints" / "checkpoint.safetensors").rename(out / "checkpoints" / "checkpoint.pt")
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--resume"])
    assert result.exit_code == 1, result.output
    assert "checkpoint.pt was written by an older nlpkit as a pickle" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_runs_kind_pretrain_shows_the_corpus_and_its_token_store(trained):
    runs = trained.parent / "runs"
    result = runner.invoke(app, ["runs", "--kind", "pretrain", "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert " docs, " in result.output and " tokens" in result.output and "store built" in result.output
    listed = runner.invoke(app, ["runs", "--kind", "pretrain", "--runs-dir", str(runs), "--json"])
    (row,) = json.loads(listed.output)
    assert row["corpus_tokens"] > 0 and row["corpus_documents"] > 0 and row["store_reused"] is False
    assert Path(row["store"]).is_dir()

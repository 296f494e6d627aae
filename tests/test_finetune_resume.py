"""`nlpkit finetune --resume`: an interrupted fine-tuning continues to exactly the uninterrupted result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("transformers")

from nlpkit.cli import app  # noqa: E402
from test_finetune import make_tiny_checkpoint  # noqa: E402
from test_finetune_cli import _split  # noqa: E402

# 40 training documents in batches of 4: 10 steps an epoch, two evaluations an epoch, three epochs
OPTIONS = dict(epochs=3, batch_size=4, max_length=32, lr=1e-3, evals_per_epoch=2, patience=0, threads=1,
               device="cpu")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("resume-ckpt") / "tiny-bert")


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    return _split(root / "agnews", "agnews_sample.jsonl", {"train": (0, 40), "valid": (40, 56), "test": (56, 76)}).path


class Interrupt:
    """A progress callable that raises KeyboardInterrupt at the first report matching ``when``."""

    def __init__(self, when):
        self.when = when

    def __call__(self, record: dict) -> None:
        if self.when(record):
            raise KeyboardInterrupt


def _scores(run) -> np.ndarray:
    return run.predictions()[1]


def _weights(run) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(run.model_dir / "model.safetensors"))


def _resume_files(runs_dir: Path) -> list[Path]:
    return sorted((runs_dir / ".resume").glob("*")) if (runs_dir / ".resume").exists() else []


@pytest.mark.parametrize("when, resumed_at", [
    (lambda r: r.get("step") == 10 and "eval" not in r, 9),     # mid-epoch, from the state saved each step
    (lambda r: "eval" in r and r["eval"]["step"] == 15, 15),    # just after the second epoch's first evaluation
])
def test_an_interrupted_run_resumes_to_the_uninterrupted_result(ckpt, split, runs_dir, when, resumed_at):
    from nlpkit.finetune import finetune

    whole = finetune(split, ckpt, seed=3, runs_dir=runs_dir, **OPTIONS)
    assert _resume_files(runs_dir) == []  # a recorded run leaves no training state behind
    with pytest.raises(KeyboardInterrupt):
        finetune(split, ckpt, seed=3, runs_dir=runs_dir, progress=Interrupt(when), checkpoint_seconds=0, **OPTIONS)
    assert len(_resume_files(runs_dir)) == 1
    resumed = finetune(split, ckpt, seed=3, runs_dir=runs_dir, resume=True, **OPTIONS)
    fit = resumed.info["fit_info"]
    assert fit["resumed_from_step"] == resumed_at
    assert resumed.info["config"]["resumed"] is True
    assert fit["steps"] == whole.info["fit_info"]["steps"] == 30
    # every evaluation's training loss and valid metric: the steps after the interruption are the same steps
    assert [(h["train_loss"], h["valid_metric"]) for h in fit["history"]] == \
        [(h["train_loss"], h["valid_metric"]) for h in whole.info["fit_info"]["history"]]
    assert np.array_equal(_scores(resumed), _scores(whole))
    a, b = _weights(resumed), _weights(whole)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)  # bit for bit
    assert _resume_files(runs_dir) == []


def test_resume_without_an_interrupted_run_or_with_other_options_is_one_line_error(ckpt, split, runs_dir):
    from nlpkit.finetune import finetune

    with pytest.raises(KeyboardInterrupt):
        finetune(split, ckpt, seed=3, runs_dir=runs_dir, progress=Interrupt(lambda r: "eval" in r), **OPTIONS)
    args = [str(split), "--model", str(ckpt), "--epochs", "3", "--batch-size", "4", "--max-length", "32", "--lr", "1e-3",
            "--evals-per-epoch", "2", "--patience", "0", "--threads", "1", "--device", "cpu", "--seed", "3",
            "--runs-dir", str(runs_dir), "--resume"]
    other = [a if a != "1e-3" else "2e-3" for a in args]  # another learning rate: another run
    result = CliRunner().invoke(app, ["finetune", *other])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no interrupted fine-tuning" in lines[0] and "Traceback" not in result.output
    assert len(_resume_files(runs_dir)) == 1  # the kept state is untouched


def test_a_damaged_training_state_is_refused_and_kept(ckpt, split, runs_dir):
    from nlpkit.errors import NlpkitError
    from nlpkit.finetune import finetune

    with pytest.raises(KeyboardInterrupt):
        finetune(split, ckpt, seed=3, runs_dir=runs_dir, progress=Interrupt(lambda r: "eval" in r), **OPTIONS)
    (state,) = _resume_files(runs_dir)
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(NlpkitError, match="unreadable or not an nlpkit state file"):
        finetune(split, ckpt, seed=3, runs_dir=runs_dir, resume=True, **OPTIONS)
    assert state.exists()


def test_a_fresh_run_over_a_kept_state_warns_and_replaces_it(ckpt, split, runs_dir):
    from nlpkit.finetune import finetune
    from nlpkit.models.transformer import FinetuneWarning

    with pytest.raises(KeyboardInterrupt):
        finetune(split, ckpt, seed=3, runs_dir=runs_dir, progress=Interrupt(lambda r: "eval" in r), **OPTIONS)
    with pytest.warns(FinetuneWarning, match="add --resume"):
        run = finetune(split, ckpt, seed=3, runs_dir=runs_dir, **OPTIONS)
    assert run.info["fit_info"]["resumed_from_step"] is None
    assert _resume_files(runs_dir) == []


def test_ctrl_c_says_how_to_resume(ckpt, split, runs_dir, monkeypatch):
    import nlpkit.finetune as ft

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ft, "finetune", interrupted)
    result = CliRunner().invoke(app, ["finetune", str(split), "--model", str(ckpt), "--runs-dir", str(runs_dir)])
    assert result.exit_code == 130
    assert "Interrupted." in result.output and "--resume" in result.output

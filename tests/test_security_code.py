"""No checkpoint or run folder's own Python code ever runs (issue #20).

A folder whose config.json / tokenizer_config.json has an ``auto_map`` naming classes transformers
does not ship makes transformers ask "Do you wish to run the custom code? [y/N]" and, on "y", import
the folder's ``.py`` files. Every entry point that loads such a folder must refuse in one line
before any prompt. The planted code writes a marker file when imported: the marker must never appear,
even when the user answers "y".
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("transformers")

from nlpkit.cli import app  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()
PROMPT = "Do you wish to run the custom code"
MODEL_AUTO_MAP = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
                  "AutoModelForSequenceClassification": "evil.EvilModel", "AutoModelForMaskedLM": "evil.EvilModel"}
TOKENIZER_AUTO_MAP = {"AutoTokenizer": ["evil_tok.EvilTokenizer", None]}
# What the folder's code does when imported: leave a trace (and be a plausible module otherwise).
EVIL_CODE = """import pathlib
pathlib.Path({marker!r}).write_text("the folder's own code ran", encoding="utf-8")
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast


class EvilConfig(BertConfig):
    model_type = "evilbert"


class EvilModel(BertForSequenceClassification):
    config_class = EvilConfig


class EvilTokenizer(PreTrainedTokenizerFast):
    pass
"""


def _edit_json(file: Path, **changes) -> None:
    data = json.loads(file.read_text(encoding="utf-8"))
    data.update(changes)
    file.write_text(json.dumps(data), encoding="utf-8")


def plant(folder: Path, marker: Path, side: str, *, model_type: str = "evilbert",
          tokenizer_class: str = "EvilTokenizer") -> Path:
    """Make ``folder`` (a real checkpoint) ask for its own code: ``side`` "model" edits config.json,
    "tokenizer" edits tokenizer_config.json; the named modules write ``marker`` when imported."""
    for module in ("evil.py", "evil_tok.py"):
        (folder / module).write_text(EVIL_CODE.format(marker=str(marker)), encoding="utf-8")
    if side == "model":
        _edit_json(folder / "config.json", model_type=model_type, auto_map=MODEL_AUTO_MAP)
    else:
        _edit_json(folder / "tokenizer_config.json", tokenizer_class=tokenizer_class, auto_map=TOKENIZER_AUTO_MAP)
    return folder


def evil_copy(src: Path, tmp_path: Path, side: str, **kw) -> tuple[Path, Path]:
    """(a copy of the checkpoint ``src`` with planted code, the marker file that code would write)."""
    marker = tmp_path / "custom-code-ran.txt"
    dst = tmp_path / f"evil-{side}"
    shutil.copytree(src, dst)
    if side == "tokenizer-only":  # a tokenizer folder (--tokenizer DIR): no config.json to name a model type
        for name in ("config.json", "model.safetensors"):
            (dst / name).unlink()
        side = "tokenizer"
    return plant(dst, marker, side, **kw), marker


def assert_refused(result, folder: Path, marker: Path) -> None:
    """Exit 1 with one ``Error:`` line naming the folder and auto_map; no prompt; no code ran."""
    assert PROMPT not in result.output
    assert not marker.exists(), "the folder's own Python code ran"
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert str(folder) in errors[0] and "auto_map" in errors[0], errors[0]
    assert "never runs code from a model folder" in errors[0]


# --- fixtures: a real split, corpus and fine-tuned run -----------------------------------------

@pytest.fixture(scope="module")
def split_dir(tmp_path_factory) -> Path:
    from nlpkit.data import read_dataset, write_split

    ds = read_dataset(REPO / "data" / "agnews_sample.jsonl")
    parts = {"train": ds.subset(np.arange(0, 16)), "valid": ds.subset(np.arange(16, 24)),
             "test": ds.subset(np.arange(24, 32))}
    return write_split(tmp_path_factory.mktemp("sec-split") / "split", parts, {"seed": 0, "source": "agnews"}).path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sec-corpus") / "docs.txt"
    with open(REPO / "data" / "reuters_sample.jsonl", encoding="utf-8") as fh:
        path.write_text("".join(" ".join(json.loads(line)["text"].split()) + "\n" for line in fh), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def transformer_run(split_dir, tiny_checkpoint, tmp_path_factory):
    """A real recorded fine-tune run (1 epoch of a 1-layer BERT), made through the Python API."""
    from nlpkit.finetune import finetune

    runs = tmp_path_factory.mktemp("sec-runs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return finetune(split_dir, tiny_checkpoint, runs_dir=runs, epochs=1, max_length=32, batch_size=8,
                        threads=1, device="cpu")


def evil_run(run, tmp_path: Path, side: str, **kw) -> tuple[Path, Path, Path]:
    """(a copy of ``run`` whose model/ asks for its own code, its model/ folder, the marker).

    The sizes and hashes in nlpkit_model.json are recorded again, as someone handing out a doctored
    run folder would do, so that only the auto_map check stands between the folder and its code."""
    from nlpkit.models.base import MODEL_JSON, file_records

    marker = tmp_path / "custom-code-ran.txt"
    dst = tmp_path / f"run-{side}"
    shutil.copytree(run.path, dst)
    model_dir = plant(dst / "model", marker, side, **kw)
    meta = json.loads((model_dir / MODEL_JSON).read_text(encoding="utf-8"))
    meta["files"] = file_records(model_dir)
    (model_dir / MODEL_JSON).write_text(json.dumps(meta), encoding="utf-8")
    return dst, model_dir, marker


def _docs(tmp_path: Path) -> Path:
    file = tmp_path / "new.jsonl"
    file.write_text('{"id": "n1", "text": "stocks rally as oil falls"}\n', encoding="utf-8")
    return file


# --- every entry point refuses, before any prompt, even when the user answers "y" -------------

SIDES = ["model", "tokenizer"]


@pytest.mark.parametrize("side", SIDES)
def test_finetune_model_with_custom_code_is_refused(side, split_dir, tiny_checkpoint, tmp_path):
    folder, marker = evil_copy(tiny_checkpoint, tmp_path, side)
    result = runner.invoke(app, ["finetune", str(split_dir), "--model", str(folder), "--epochs", "1",
                                 "--threads", "1", "--device", "cpu", "--json"], input="y\n")
    assert_refused(result, folder, marker)


@pytest.mark.parametrize("side", SIDES)
def test_pretrain_init_from_with_custom_code_is_refused(side, corpus, tiny_checkpoint, tmp_path):
    folder, marker = evil_copy(tiny_checkpoint, tmp_path, side)
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(tmp_path / "out"), "--init-from", str(folder),
                                 "--max-length", "32", "--steps", "1", "--threads", "1", "--json"], input="y\n")
    assert_refused(result, folder, marker)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["--tokenizer", "--compare-tokenizer"])
@pytest.mark.parametrize("side", [*SIDES, "tokenizer-only"])
def test_pretrain_tokenizer_with_custom_code_is_refused(side, option, corpus, tiny_checkpoint, tmp_path):
    # AutoTokenizer reads config.json too (for the model type), so the model side counts here as well
    folder, marker = evil_copy(tiny_checkpoint, tmp_path, side)
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(tmp_path / "out"), option, str(folder),
                                 "--layers", "1", "--hidden", "32", "--heads", "2", "--max-length", "32",
                                 "--steps", "1", "--threads", "1", "--json"], input="y\n")
    assert_refused(result, folder, marker)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("side", SIDES)
def test_predict_with_a_run_folder_asking_for_custom_code_is_refused(side, transformer_run, tmp_path):
    run_dir, model_dir, marker = evil_run(transformer_run, tmp_path, side)
    result = runner.invoke(app, ["predict", str(run_dir), str(_docs(tmp_path))], input="y\n")
    assert_refused(result, model_dir, marker)
    assert result.stdout.strip() == ""  # nothing but the error: no prompt on stdout


def test_the_untouched_run_still_predicts(transformer_run, tmp_path):
    result = runner.invoke(app, ["predict", str(transformer_run.path), str(_docs(tmp_path))])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == "n1"


# --- the check itself -------------------------------------------------------------------------

def test_refuse_custom_code_names_the_file_and_the_auto_map(tiny_checkpoint, tmp_path):
    from nlpkit.errors import ConfigError
    from nlpkit.hf.checkpoint import refuse_custom_code

    folder, marker = evil_copy(tiny_checkpoint, tmp_path, "model")
    with pytest.raises(ConfigError) as exc:
        refuse_custom_code(folder, "--model")
    message = str(exc.value)
    assert "\n" not in message
    assert f"{folder / 'config.json'}" in message and "'evilbert'" in message
    assert "auto_map: AutoConfig -> evil.EvilConfig" in message and "--model" in message
    folder, marker = evil_copy(tiny_checkpoint, tmp_path / "t", "tokenizer")
    with pytest.raises(ConfigError, match=r"tokenizer_config\.json .*auto_map: AutoTokenizer -> evil_tok\.EvilTokenizer"):
        refuse_custom_code(folder, "--tokenizer")
    assert not marker.exists()


@pytest.mark.parametrize("edit", [{"model_type": None}, {"model_type": 7}])
def test_auto_map_without_a_known_model_type_is_refused(edit, tiny_checkpoint, tmp_path):
    from nlpkit.errors import ConfigError
    from nlpkit.hf.checkpoint import refuse_custom_code

    folder, _ = evil_copy(tiny_checkpoint, tmp_path, "model")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if edit["model_type"] is None:
        del config["model_type"]
    else:
        config.update(edit)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ConfigError, match="auto_map"):
        refuse_custom_code(folder, "--model")


def test_a_folder_without_auto_map_passes_quietly(tiny_checkpoint):
    from nlpkit.hf.checkpoint import refuse_custom_code

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refuse_custom_code(tiny_checkpoint, "--model")


def test_a_malformed_tokenizer_config_is_a_one_line_error_with_its_position(tiny_checkpoint, tmp_path):
    from nlpkit.errors import ConfigError
    from nlpkit.hf.checkpoint import refuse_custom_code

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    (folder / "tokenizer_config.json").write_text('{"tokenizer_class": "BertTokenizer",\n "auto_map', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tokenizer_config\.json:2:2: not valid JSON"):
        refuse_custom_code(folder, "--tokenizer")


def test_auto_map_over_built_in_classes_loads_the_built_in_code_with_a_warning(transformer_run, tmp_path):
    """auto_map beside a model type and tokenizer class transformers ships: transformers (with
    trust_remote_code=False) loads its own classes, so the folder loads; the user is told the
    auto_map is ignored, and the folder's code never runs."""
    from nlpkit.hf.checkpoint import CheckpointWarning

    run_dir, model_dir, marker = evil_run(transformer_run, tmp_path, "model", model_type="bert")
    plant(model_dir, marker, "tokenizer", tokenizer_class="BertTokenizer")
    from nlpkit.models.base import MODEL_JSON, file_records

    meta = json.loads((model_dir / MODEL_JSON).read_text(encoding="utf-8"))
    meta["files"] = file_records(model_dir)
    (model_dir / MODEL_JSON).write_text(json.dumps(meta), encoding="utf-8")
    result = runner.invoke(app, ["predict", str(run_dir), str(_docs(tmp_path))], input="y\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == "n1"
    assert PROMPT not in result.output and not marker.exists()
    # one line each on stderr, as every warning of the CLI (not Python's two-line warning format)
    shown = [line for line in result.stderr.splitlines() if "auto_map" in line]
    assert all(line.startswith("Warning: ") and "ignored" in line for line in shown), result.stderr
    files = {line.split(" ")[1] for line in shown}
    assert files == {str(model_dir / "config.json"), str(model_dir / "tokenizer_config.json")}
    assert CheckpointWarning.__name__ not in result.stderr


def test_load_tokenizer_over_built_in_classes_warns_and_runs_no_code(tiny_checkpoint, tmp_path):
    from nlpkit.hf.checkpoint import CheckpointWarning
    from nlpkit.hf.tokenizer import load_tokenizer

    folder, marker = evil_copy(tiny_checkpoint, tmp_path, "tokenizer", tokenizer_class="BertTokenizerFast")
    with pytest.warns(CheckpointWarning, match="tokenizer_config.json"):
        tok = load_tokenizer(folder)
    assert type(tok).__module__.startswith("transformers.")
    assert tok.get_vocab() == load_tokenizer(tiny_checkpoint).get_vocab()
    assert not marker.exists()


# --- defence in depth: trust_remote_code=False even where the check would miss -----------------

@pytest.fixture
def no_check(monkeypatch):
    """Switch refuse_custom_code off everywhere, to test what transformers alone is told to do."""
    import nlpkit.hf.checkpoint as hf
    import nlpkit.hf.tokenizer as tokenizer
    import nlpkit.models.transformer as transformer

    def skip(path, what):
        return None

    for module in (hf, transformer, tokenizer):
        monkeypatch.setattr(module, "refuse_custom_code", skip)


@pytest.mark.parametrize("entry", ["finetune", "init-from", "tokenizer", "predict"])
def test_without_the_check_transformers_still_never_prompts_or_runs_the_code(entry, no_check, split_dir, corpus,
                                                                             tiny_checkpoint, transformer_run,
                                                                             tmp_path):
    side = "tokenizer-only" if entry == "tokenizer" else "model"
    if entry == "predict":
        run_dir, folder, marker = evil_run(transformer_run, tmp_path, side)
        args = ["predict", str(run_dir), str(_docs(tmp_path))]
    else:
        folder, marker = evil_copy(tiny_checkpoint, tmp_path, side)
        args = {"finetune": ["finetune", str(split_dir), "--model", str(folder), "--epochs", "1", "--threads", "1",
                             "--device", "cpu"],
                "init-from": ["pretrain", str(corpus), "--out", str(tmp_path / "out"), "--init-from", str(folder),
                              "--max-length", "32", "--steps", "1", "--threads", "1"],
                "tokenizer": ["pretrain", str(corpus), "--out", str(tmp_path / "out"), "--tokenizer", str(folder),
                              "--layers", "1", "--hidden", "32", "--heads", "2", "--max-length", "32",
                              "--steps", "1", "--threads", "1"]}[entry]
    result = runner.invoke(app, args, input="y\n")
    assert PROMPT not in result.output
    assert not marker.exists(), "the folder's own Python code ran"
    assert result.exit_code == 1, result.output
    assert sum(line.startswith("Error:") for line in result.output.splitlines()) == 1, result.output


# --- pickled weights ---------------------------------------------------------------------------

class _Trace:
    """A pickle payload: unpickling it opens (creates) the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("command", ["finetune", "init-from"])
def test_pickled_weights_are_refused_without_unpickling(command, split_dir, corpus, tiny_checkpoint, tmp_path):
    import pickle

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_checkpoint, folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "unpickled.txt"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": _Trace(marker)}))
    if command == "finetune":
        args = ["finetune", str(split_dir), "--model", str(folder), "--epochs", "1", "--threads", "1", "--json"]
    else:
        args = ["pretrain", str(corpus), "--out", str(tmp_path / "out"), "--init-from", str(folder),
                "--max-length", "32", "--steps", "1", "--threads", "1", "--json"]
    result = runner.invoke(app, args)
    assert not marker.exists(), "a pickle from the folder was loaded"
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "pytorch_model.bin" in errors[0] and "never from a pickle" in errors[0], result.output

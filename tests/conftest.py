"""Shared fixtures: an isolated runs folder for every test, bundled-data paths, tiny datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

REPO = Path(__file__).resolve().parent.parent
TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # so REGISTRY paths like "fake_model:KeywordClassifier" import
    sys.path.insert(0, str(TESTS_DIR))


def _cache_cli_commands() -> None:
    """Build the Click command of a Typer app once per test session, not on every
    ``CliRunner.invoke`` (about 30 ms each, over a thousand invocations); a Click command keeps no
    state between invocations, and `nlpkit` builds it once per process too."""
    import functools

    import typer.testing

    typer.testing._get_command = functools.lru_cache(maxsize=None)(typer.testing._get_command)


_cache_cli_commands()


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch) -> Path:
    """Every test writes runs under its own tmp folder, never into ./runs."""
    path = tmp_path / "runs"
    monkeypatch.setenv("NLPKIT_RUNS_DIR", str(path))
    return path


@pytest.fixture
def data_dir() -> Path:
    """The bundled samples: reuters_sample.jsonl, agnews_sample.jsonl, cooking_sample.txt."""
    return REPO / "data"


@pytest.fixture
def fake_registry(monkeypatch):
    """REGISTRY with the test keyword model added as ``fake-keyword``."""
    import fake_model
    from nlpkit import models

    monkeypatch.setitem(models.REGISTRY, fake_model.FAMILY, fake_model.IMPORT_PATH)
    return models.REGISTRY


# --- tiny datasets ------------------------------------------------------------------------------

def make_dataset(texts, labels, *, task=None, label_names=None, ids=None):
    """A Dataset from texts and per-document label lists (label space = sorted union unless given)."""
    labels = [[lab] if isinstance(lab, str) else list(lab) for lab in labels]
    if label_names is None:
        label_names = sorted({lab for labs in labels for lab in labs})
    if task is None:
        task = "single" if all(len(labs) == 1 for labs in labels) else "multi"
    index = {name: j for j, name in enumerate(label_names)}
    y = sp.lil_matrix((len(texts), len(label_names)), dtype=np.uint8)
    for i, labs in enumerate(labels):
        for lab in labs:
            y[i, index[lab]] = 1
    y = y.tocsr()
    ids = [str(i) for i in range(len(texts))] if ids is None else [str(i) for i in ids]
    from nlpkit.data import Dataset

    return Dataset(ids=ids, texts=list(texts), y=y, label_names=list(label_names), task=task,
                   extra=None, source=None)


_FRUIT = ["apple banana cherry", "banana apple pie", "cherry apple tart", "sweet banana bread",
          "apple cider", "banana split"]
_ENGINE = ["engine piston valve", "piston oil engine", "valve timing engine", "oil change engine",
           "turbo piston", "engine repair"]
_SPORT = ["football goal match", "goal keeper football", "match referee goal", "football league",
          "penalty goal", "referee whistle"]


@pytest.fixture
def single_parts():
    """Train/valid/test for a 3-class single-label task, plus a 4th label with no train example."""
    names = ["engine", "fruit", "sport", "zzz-unseen"]

    def part(lo, hi, prefix):
        texts, labels = [], []
        for group, lab in ((_FRUIT, "fruit"), (_ENGINE, "engine"), (_SPORT, "sport")):
            texts += group[lo:hi]
            labels += [lab] * (hi - lo)
        return texts, labels

    tr, va, te = part(0, 4, "tr"), part(4, 5, "va"), part(5, 6, "te")
    te_texts, te_labels = te[0] + ["mystery thing"], te[1] + ["zzz-unseen"]
    return {
        "train": make_dataset(*tr, task="single", label_names=names, ids=[f"tr{i}" for i in range(len(tr[0]))]),
        "valid": make_dataset(*va, task="single", label_names=names, ids=[f"va{i}" for i in range(len(va[0]))]),
        "test": make_dataset(te_texts, te_labels, task="single", label_names=names,
                             ids=[f"te{i}" for i in range(len(te_texts))]),
    }


@pytest.fixture
def multi_parts():
    """Train/valid/test for a multi-label task; label "never" has no positive in train."""
    names = ["a", "b", "c", "never"]
    texts = ["alpha one", "alpha beta", "beta two", "gamma three", "alpha gamma", "beta gamma",
             "alpha", "beta", "gamma", "alpha beta gamma"]
    labels = [["a"], ["a", "b"], ["b"], ["c"], ["a", "c"], ["b", "c"], ["a"], ["b"], ["c"], ["a", "b", "c"]]
    train = make_dataset(texts, labels, task="multi", label_names=names, ids=[f"tr{i}" for i in range(10)])
    valid = make_dataset(["alpha two", "beta three", "gamma one"], [["a"], ["b"], ["c"]], task="multi",
                         label_names=names, ids=["va0", "va1", "va2"])
    test = make_dataset(["alpha beta x", "gamma y", "never seen"], [["a", "b"], ["c"], ["never"]], task="multi",
                        label_names=names, ids=["te0", "te1", "te2"])
    return {"train": train, "valid": valid, "test": test}


def _write_split(path, parts, manifest=None):
    from nlpkit.data import write_split

    return write_split(path, parts, manifest or {"seed": 0, "source": "tiny-test-data"})


@pytest.fixture
def make_split(tmp_path):
    """Factory: write parts as a split folder under tmp (``nlpkit.data.write_split``)."""

    def factory(parts, name="split", manifest=None):
        return _write_split(tmp_path / name, parts, manifest)

    return factory


@pytest.fixture
def single_split(make_split, single_parts):
    return make_split(single_parts, "single_split")


@pytest.fixture
def multi_split(make_split, multi_parts):
    return make_split(multi_parts, "multi_split")


_TINY_WORDS = (
    "apple banana cherry pie tart sweet bread cider split engine piston valve oil timing change turbo "
    "repair football goal match keeper referee league penalty whistle alpha beta gamma one two three "
    "mystery thing never seen x y"
)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised 1-layer BERT with a word-level vocabulary, saved like a checkpoint.

    For tests of the transformer family that must not download anything; its scores mean nothing.
    """
    pytest.importorskip("transformers")
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny_bert")
    words = sorted(set(_TINY_WORDS.split()))
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertForMaskedLM(config).save_pretrained(path)
    return path

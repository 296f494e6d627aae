"""fastText model files are checked for structure before fastText reads them (issue #20).

fastText trusts the sizes in a ``.bin``: a crafted dictionary size made it allocate gigabytes, and
a file cut short loaded and predicted garbage. Each damaged file here gets its size and sha256
re-recorded in ``nlpkit_model.json``, as an attacker would, so that only the structure can tell.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import make_dataset
from nlpkit.cli import app
from nlpkit.data import write_split
from nlpkit.experiment import run_experiment
from nlpkit.models import load_model
from nlpkit.models.base import MODEL_JSON, file_records
from nlpkit.models.fasttext_clf import FastTextClassifier
from nlpkit.models.fasttext_format import check_model_file

runner = CliRunner()

# Offsets in a fastText .bin (args.cc Args::save, dictionary.cc Dictionary::save): magic and
# version, then 12 int32 arguments and a double, then the dictionary's size, nwords, nlabels
DIM_AT, BUCKET_AT, DICT_SIZE_AT, N_WORDS_AT, N_LABELS_AT = 8, 40, 64, 68, 72
DICT_HEAD_END = 96
# `nlpkit predict` on the tiny model peaks at about 190 MB of address space (VmPeak); the crafted
# dictionary asks fastText for about 12 GB (a table of 2**31 / 0.7 int32) and more
ADDRESS_SPACE_CAP = 1 << 30

_FRUIT = ["apple banana cherry", "banana apple pie", "cherry apple tart", "sweet banana bread", "apple cider",
          "banana split"]
_ENGINE = ["engine piston valve", "piston oil engine", "valve timing engine", "oil change engine", "turbo piston",
           "engine repair"]


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A baseline run whose model averages two fastText models (fasttext.bin with bigram buckets,
    fasttext-1.bin), trained once for this module; tests damage copies of it."""
    root = tmp_path_factory.mktemp("fasttext-security")

    def part(lo, hi):
        return make_dataset(_FRUIT[lo:hi] + _ENGINE[lo:hi], ["fruit"] * (hi - lo) + ["engine"] * (hi - lo),
                            label_names=["engine", "fruit"])

    split = write_split(root / "split", {"train": part(0, 4), "valid": part(4, 5), "test": part(5, 6)},
                        {"seed": 0, "source": "tiny-test-data"})
    model = FastTextClassifier(dim=8, epoch=5, combine="average", seed=0)
    run = run_experiment(model, split, config={}, seed=0, runs_root=root / "runs")
    assert sorted(p.name for p in run.model_dir.glob("*.bin")) == ["fasttext-1.bin", "fasttext.bin"]
    return run


@pytest.fixture
def run_copy(saved_run, tmp_path):
    return Path(shutil.copytree(saved_run.path, tmp_path / saved_run.name))


@pytest.fixture
def new_texts(tmp_path):
    path = tmp_path / "new.jsonl"
    path.write_text('{"id": "n1", "text": "apple pie"}\n{"id": "n2", "text": "oil engine"}\n', encoding="utf-8")
    return path


def _rewrite(run_dir: Path, name: str, edit) -> Path:
    """Replace model file ``name`` by ``edit(its bytes)`` and re-record every file's size and sha256."""
    model_dir = run_dir / "model"
    file = model_dir / name
    file.write_bytes(bytes(edit(bytearray(file.read_bytes()))))
    meta = json.loads((model_dir / MODEL_JSON).read_text(encoding="utf-8"))
    meta["files"] = file_records(model_dir)
    (model_dir / MODEL_JSON).write_text(json.dumps(meta), encoding="utf-8")
    return file


def _int32_at(offset: int, value: int):
    """An edit for :func:`_rewrite`: the int32 at ``offset`` set to ``value``."""

    def edit(data):
        struct.pack_into("<i", data, offset, value)
        return data

    return edit


def _dictionary_end(data: bytes) -> int:
    """Where the dictionary of a whole fastText .bin ends: its size less the two matrices (each a
    flag byte, m and n as int64, m * n float32) behind it."""
    (dim,), (bucket,) = struct.unpack_from("<i", data, DIM_AT), struct.unpack_from("<i", data, BUCKET_AT)
    (n_words,), (n_labels,) = struct.unpack_from("<i", data, N_WORDS_AT), struct.unpack_from("<i", data, N_LABELS_AT)
    return len(data) - 2 * (1 + 16) - 4 * dim * (n_words + bucket + n_labels)


def _predict_capped(run_dir: Path, texts: Path) -> subprocess.CompletedProcess:
    """``python -m nlpkit predict`` in a process whose address space is capped (RLIMIT_AS)."""
    resource = pytest.importorskip("resource")

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_CAP, ADDRESS_SPACE_CAP))

    # one thread per numerical library: their per-thread buffers count towards the cap
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nlpkit", "predict", str(run_dir), str(texts)],
                          capture_output=True, text=True, env=env, preexec_fn=cap, timeout=300)


def _assert_refused(proc: subprocess.CompletedProcess, file: Path, detail: str) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and proc.stdout == "", proc.stderr
    assert lines[0].startswith(f"Error: cannot read the fasttext model in {file}: {detail}"), lines[0]
    assert lines[0].endswith("the file is damaged or is not a fastText model. Re-run the experiment (e.g. nlpkit "
                             "baseline) to save the model again.")


def test_untouched_model_predicts_as_when_it_was_trained(saved_run, new_texts):
    # the cap leaves room for a normal predict, and loading keeps the scores the run recorded
    proc = _predict_capped(saved_run.path, new_texts)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["labels"] for line in proc.stdout.splitlines()] == [["fruit"], ["engine"]]
    ids, scores, _pred = saved_run.predictions()
    test_texts = [_FRUIT[5], _ENGINE[5]]
    assert len(ids) == len(test_texts)
    np.testing.assert_allclose(load_model(saved_run.model_dir).predict_proba(test_texts), scores, atol=1e-6)
    for file in saved_run.model_dir.glob("*.bin"):
        check_model_file(file)


@pytest.mark.parametrize("name", ["fasttext.bin", "fasttext-1.bin"])
def test_crafted_dictionary_size_is_refused_before_fasttext_allocates(run_copy, new_texts, name):
    # Without the check fastText allocates until the cap stops it (std::bad_alloc: "asks for more
    # memory than there is"); without the cap, 16 GB and a process deaf to SIGTERM.
    file = _rewrite(run_copy, name, _int32_at(DICT_SIZE_AT, 2**31 - 1))
    proc = _predict_capped(run_copy, new_texts)
    _assert_refused(proc, file, "its dictionary claims 2,147,483,647 entries but only ")


@pytest.mark.parametrize("cut", ["last 1,000 bytes", "middle of the dictionary", "last dictionary entry"])
def test_file_cut_short_with_its_hash_re_recorded_is_refused(run_copy, new_texts, cut):
    def truncate(data):
        end = _dictionary_end(data)
        keep = {"last 1,000 bytes": len(data) - 1000, "middle of the dictionary": (DICT_HEAD_END + end) // 2,
                "last dictionary entry": end - 3}[cut]
        return data[:keep]

    file = _rewrite(run_copy, "fasttext.bin", truncate)
    detail = {"last 1,000 bytes": "its input matrix needs ",
              "middle of the dictionary": "its dictionary claims ",
              "last dictionary entry": "its dictionary's entry "}[cut]
    _assert_refused(_predict_capped(run_copy, new_texts), file, detail)


def test_bytes_after_the_model_are_refused(run_copy, new_texts):
    file = _rewrite(run_copy, "fasttext-1.bin", lambda data: data + b"\0" * 16)
    result = runner.invoke(app, ["predict", str(run_copy), str(new_texts)])
    assert result.exit_code == 1
    assert f"Error: cannot read the fasttext model in {file}: 16 bytes follow the end of the model" in result.stderr


def test_file_that_is_not_a_fasttext_model_is_refused(run_copy, new_texts):
    file = _rewrite(run_copy, "fasttext.bin", _int32_at(0, 0x464C457F))  # an ELF file's
    result = runner.invoke(app, ["predict", str(run_copy), str(new_texts)])
    assert result.exit_code == 1
    assert (f"Error: cannot read the fasttext model in {file}: it does not start with fastText's magic number "
            f"793712314" in result.stderr)


def test_label_that_is_not_one_of_the_model_is_refused(run_copy, new_texts):
    # a well-formed file whose label names no column (predicting failed with an IndexError)
    file = _rewrite(run_copy, "fasttext-1.bin", lambda data: data.replace(b"__label__1\0", b"__label__7\0"))
    result = runner.invoke(app, ["predict", str(run_copy), str(new_texts)])
    assert result.exit_code == 1
    assert (f"Error: cannot read the fasttext model in {file}: its labels are not those of "
            f"{run_copy / 'model' / 'fasttext_labels.json'}. Re-run the experiment" in result.stderr)

"""Faults: a full disk, debris of killed processes, orphaned workers, Ctrl-C at a bad moment, file modes."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nlpkit import _io
from nlpkit.cli import app
from nlpkit.runs import list_runs, unfinished_runs

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()
MICRO = ["--layers", "1", "--hidden", "32", "--heads", "2", "--vocab-size", "600", "--max-length", "32",
         "--batch-size", "4", "--steps", "2", "--eval-every", "1", "--save-every", "1", "--threads", "1"]


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")  # as a failed write(2): no file name


class _FullFile(io.TextIOWrapper):
    def write(self, _text):
        _enospc()

    def writelines(self, _lines):
        _enospc()


def fill_text_files(monkeypatch) -> None:
    """Every text file nlpkit writes atomically fails with ENOSPC at its first write."""
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        if "w" in mode and "b" not in mode:
            return _FullFile(real(fd, "wb"), encoding=kwargs.get("encoding"), newline=kwargs.get("newline"))
        return real(fd, mode, *args, **kwargs)

    monkeypatch.setattr(_io.os, "fdopen", fdopen)


@pytest.fixture
def full_text_files(monkeypatch):
    fill_text_files(monkeypatch)


def assert_one_full_disk_line(result):
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an uncaught error
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "no space left on" in errors[0].lower(), result.stderr
    assert "free some space" in errors[0]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []


# --- a full disk: one line, nothing half-written --------------------------------------------------

def test_split_on_a_full_disk(full_text_files, data_dir, tmp_path):
    out = tmp_path / "s"
    result = runner.invoke(app, ["split", str(data_dir / "reuters_sample.jsonl"), "--out", str(out)])
    assert_one_full_disk_line(result)
    assert str(out) in result.stderr
    assert list(tmp_path.iterdir()) == []  # no split folder, no .s.tmp-*


def test_baseline_on_a_full_disk(single_split, runs_dir, monkeypatch):
    import numpy as np

    monkeypatch.setattr(np, "savez_compressed", _enospc)
    result = runner.invoke(app, ["baseline", str(single_split.path), "--model", "majority"])
    assert_one_full_disk_line(result)
    assert list_runs() == [] and unfinished_runs() == [] and hidden(runs_dir) == []


def test_predict_out_on_a_full_disk(single_split, runs_dir, tmp_path, monkeypatch):
    assert runner.invoke(app, ["baseline", str(single_split.path), "--model", "majority"]).exit_code == 0
    fill_text_files(monkeypatch)
    out = tmp_path / "pred.jsonl"
    result = runner.invoke(app, ["predict", list_runs()[0].name, str(single_split.path / "test.jsonl"), "--out", str(out)])
    assert_one_full_disk_line(result)
    assert str(out) in result.stderr and not out.exists() and hidden(tmp_path) == []


def test_report_on_a_full_disk(single_split, runs_dir, tmp_path, monkeypatch):
    import nlpkit.report

    assert runner.invoke(app, ["baseline", str(single_split.path), "--model", "majority"]).exit_code == 0
    monkeypatch.setattr(nlpkit.report, "_write_files", _enospc)
    result = runner.invoke(app, ["report", str(single_split.path), "--out", str(tmp_path / "rep")])
    assert_one_full_disk_line(result)
    assert not (tmp_path / "rep").exists() and hidden(tmp_path) == []


def _safetensors_full(*_args, **_kwargs):
    from safetensors import SafetensorError

    raise SafetensorError('Error while serializing: I/O error: No space left on device (os error 28) at path "x"')


@pytest.mark.slow
@pytest.mark.parametrize("where", ["weights", "predictions"])
def test_finetune_on_a_full_disk(where, single_split, tiny_checkpoint, runs_dir, monkeypatch):
    import numpy as np
    import transformers.modeling_utils

    if where == "weights":  # the model's save_pretrained (transformers' own name for safetensors' save_file)
        monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", _safetensors_full)
    else:
        monkeypatch.setattr(np, "savez_compressed", _enospc)
    result = runner.invoke(app, ["finetune", str(single_split.path), "--model", str(tiny_checkpoint),
                                 "--epochs", "1", "--threads", "1"])
    assert_one_full_disk_line(result)
    assert list_runs() == [] and unfinished_runs() == [] and hidden(runs_dir) == []


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus" / "docs.txt"
    path.parent.mkdir()
    with open(REPO / "data" / "reuters_sample.jsonl", encoding="utf-8") as fh:
        lines = [" ".join(json.loads(line)["text"].split()) for _, line in zip(range(200), fh)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_pretrain_on_a_full_disk_leaves_no_out(corpus, tmp_path, runs_dir, monkeypatch):
    pytest.importorskip("transformers")
    import transformers.modeling_utils as mu

    monkeypatch.setattr(mu, "safe_save_file", _safetensors_full)
    out = tmp_path / "work" / "model"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), *MICRO])
    assert_one_full_disk_line(result)
    assert str(out) in result.stderr
    assert not (tmp_path / "work").exists()  # no tokenizer files, no "training" pretrain.json, no .tmp-*
    assert list_runs() == [] and hidden(runs_dir) == []


def test_pretrain_full_disk_after_a_checkpoint_keeps_it_for_resume(corpus, tmp_path, runs_dir, monkeypatch):
    pytest.importorskip("transformers")
    from nlpkit.pretrain import train

    real = train.save_hf_folder
    calls = []

    def fill_on_second(*args):
        calls.append(1)
        if len(calls) == 2:  # step 2's best model: after step 1's checkpoint
            _enospc()
        real(*args)

    monkeypatch.setattr(train, "save_hf_folder", fill_on_second)
    out = tmp_path / "model"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), *MICRO, "--steps", "3"])
    assert_one_full_disk_line(result)
    assert "--resume" in result.stderr
    assert (out / "checkpoints" / "checkpoint.safetensors").is_file() and hidden(tmp_path) == []


# --- owner records and stale temporary folders -----------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _suffix(pid: int, start, host: str | None = None) -> str:
    return _io.Owner(host or _io._host(), pid, start).suffix


def test_owner_is_gone_only_when_provably_dead():
    me = _io.Owner.me()
    assert me.start is not None and not me.gone()
    assert _io.Owner(me.host, me.pid, me.start + 1).gone()  # the pid now belongs to another process
    assert _io.Owner(me.host, _dead_pid(), 123).gone()
    assert not _io.Owner("another-host.example", _dead_pid(), 123).gone()
    assert _io.Owner.parse(f".x.tmp-ab{me.suffix}") == me


def test_split_rerun_removes_only_stale_temporary_folders(data_dir, tmp_path):
    out = tmp_path / "s"
    me = _io.Owner.me()
    dead = tmp_path / f".s.tmp-dead{_suffix(_dead_pid(), 42)}"
    reused = tmp_path / f".s.tmp-reused{_suffix(me.pid, me.start + 7)}"
    live = tmp_path / f".s.tmp-live{me.suffix}"
    other = tmp_path / f".s.tmp-other{_suffix(_dead_pid(), 42, 'another-host.example')}"
    unowned = tmp_path / ".s.tmp-older"
    stale_file = tmp_path / f".s.tmp-file{_suffix(_dead_pid(), 42)}"
    for folder in (dead, reused, live, other, unowned):
        folder.mkdir()
        (folder / "train.jsonl").write_text("half\n")
    stale_file.write_text("half")
    result = runner.invoke(app, ["split", str(data_dir / "reuters_sample.jsonl"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not dead.exists() and not reused.exists() and not stale_file.exists()
    assert live.exists() and other.exists() and unowned.exists()


def _fake_run_tmp(runs_dir: Path, name: str, owner: str | None) -> Path:
    path = runs_dir / f".tmp-20250101-000000-m-{name}"
    path.mkdir(parents=True)
    (path / "metrics.json").write_text("{}")
    if owner is not None:
        (path / _io.OWNER_FILE).write_text(owner + "\n")
    return path


def test_runs_reports_stale_folders_and_the_next_run_removes_them(single_split, runs_dir):
    dead = _fake_run_tmp(runs_dir, "aaaaaa", _suffix(_dead_pid(), 42))
    live = _fake_run_tmp(runs_dir, "bbbbbb", _io.Owner.me().suffix)
    other = _fake_run_tmp(runs_dir, "cccccc", _suffix(_dead_pid(), 42, "another-host.example"))
    unowned = _fake_run_tmp(runs_dir, "dddddd", None)
    listing = runner.invoke(app, ["runs"])
    assert listing.exit_code == 0
    assert "3 unfinished run folder(s)" in listing.stderr
    assert "1 run folder(s) (.tmp-*)" in listing.stderr and "no longer running" in listing.stderr
    assert unfinished_runs(abandoned=True) == [dead]

    result = runner.invoke(app, ["baseline", str(single_split.path), "--model", "majority"])
    assert result.exit_code == 0, result.output
    assert not dead.exists() and live.exists() and other.exists() and unowned.exists()
    assert [r.model for r in list_runs()] == ["majority"]
    assert not (list_runs()[0].path / _io.OWNER_FILE).exists()  # the record is not part of a run


_KILLED = """
import os, signal, sys
from nlpkit.runs import create_run
w = create_run("baseline", "killed", runs_root=sys.argv[1])
w.__enter__()
w.write_json("metrics.json", {"half": True})
print(w.path, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_kill_9_debris_is_removed_by_the_next_run(runs_dir):
    from nlpkit.runs import create_run

    proc = subprocess.run([sys.executable, "-c", _KILLED, str(runs_dir)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    debris = Path(proc.stdout.strip())
    assert debris.is_dir() and unfinished_runs(abandoned=True) == [debris]
    with create_run("baseline", "next", runs_root=runs_dir) as run:
        run.write_json("metrics.json", {})
    assert not debris.exists() and unfinished_runs() == []


# --- worker processes die with their parent --------------------------------------------------------

_WORKERS = """
import time
import numpy as np
import scipy.sparse as sp
from nlpkit.models import liblinear
liblinear._PARALLEL_MIN_WORK = 0  # go parallel on tiny data
X = sp.random(200, 50, density=0.2, format="csr", random_state=0)
Y = sp.csr_matrix((np.random.default_rng(0).random((200, 4)) < 0.3).astype(np.uint8))
liblinear.binary_tasks(X, Y, [(None, None)], n_jobs=2, C=1.0)
print("ready", flush=True)
time.sleep(600)
"""


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(b")") + 2:].split()[1]) == pid and b"popen_loky" in cmdline:
            kids.append(int(entry))
    return kids


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2, reason="Linux /proc, 2 CPUs")
def test_workers_exit_when_their_parent_is_killed():
    proc = subprocess.Popen([sys.executable, "-c", _WORKERS], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    workers = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        workers = _children(proc.pid)
        assert len(workers) == 2
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 20  # a bound, not a speed requirement
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers)
    finally:
        proc.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


# --- Ctrl-C as write_split makes its temporary folder ----------------------------------------------

def test_interrupt_as_the_split_folder_is_made_leaves_nothing(data_dir, tmp_path, monkeypatch):
    def interrupt():
        raise KeyboardInterrupt  # just after the temporary folder is made, before its name is returned

    monkeypatch.setattr(_io, "_umask", interrupt)
    out = tmp_path / "s"
    result = runner.invoke(app, ["split", str(data_dir / "reuters_sample.jsonl"), "--out", str(out)])
    assert result.exit_code == 130 and "Interrupted" in result.stderr
    assert list(tmp_path.iterdir()) == []


# --- file modes --------------------------------------------------------------------------------------

@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): oct(p.stat().st_mode & 0o777) for p in folder.rglob("*")
            if p.is_file() and p.suffix != ".pt"}


def test_saved_model_files_are_0644(tiny_checkpoint, tmp_path, umask_022):
    pytest.importorskip("transformers")
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = tmp_path / "model"
    folder.mkdir()
    _io.save_pretrained(AutoModelForMaskedLM.from_pretrained(tiny_checkpoint), folder)
    _io.save_pretrained(AutoTokenizer.from_pretrained(tiny_checkpoint), folder)
    modes = _modes(folder)
    assert "model.safetensors" in modes and set(modes.values()) == {"0o644"}, modes


def test_pretrain_out_files_are_0644(corpus, tmp_path, runs_dir, umask_022):
    pytest.importorskip("transformers")
    out = tmp_path / "model"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), *MICRO])
    assert result.exit_code == 0, result.output
    modes = _modes(out)
    assert "model.safetensors" in modes and "last/model.safetensors" in modes
    assert set(modes.values()) == {"0o644"}, modes
    assert hidden(tmp_path) == [] and not list(out.glob(".*"))

"""The run registry: atomic creation, listing, loading, names unique under concurrency."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from nlpkit import runs
from nlpkit.errors import NlpkitError
from nlpkit.runs import create_run, list_runs, load_run, package_versions, runs_root

REPO = Path(__file__).resolve().parent.parent


def _make_run(root=None, model="m", kind="baseline", **info):
    with create_run(kind, model, runs_root=root) as w:
        w.info.update(info)
        w.write_json("metrics.json", {"test": {"metrics": {"accuracy": 0.5}}})
        w.write_predictions(["a", "b"], np.array([[0.2, 0.8], [0.6, 0.4]]), np.array([[0, 1], [1, 0]]))
        w.log("hello\nworld")
        (w.model_dir / "weights.txt").write_text("w")
    return w


def test_runs_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("NLPKIT_RUNS_DIR", str(tmp_path / "env"))
    assert runs_root(tmp_path / "arg") == tmp_path / "arg"
    assert runs_root() == tmp_path / "env"
    monkeypatch.delenv("NLPKIT_RUNS_DIR")
    assert runs_root() == Path("runs")


def test_complete_run_layout_and_load(runs_dir):
    w = _make_run(config={"C": 1.0, "nan": float("nan")}, seed=3)
    assert w.path == runs_dir / w.name and w.path.is_dir()
    assert not [p for p in runs_dir.iterdir() if p.name.startswith(".")]
    text = (w.path / "run.json").read_text()
    info = json.loads(text)
    assert list(info)[-1] == "status" and info["status"] == "complete"
    assert info["kind"] == "baseline" and info["model"] == "m" and info["seed"] == 3
    assert info["config"]["nan"] is None  # JSON has no NaN
    assert info["created"].endswith("Z")
    import re
    assert re.fullmatch(r"\d{8}-\d{6}-m-[0-9a-f]{6}", w.name)

    run = load_run(w.name)  # by name under the runs root
    assert run.path == w.path and run.kind == "baseline" and run.model == "m"
    assert run.metrics()["test"]["metrics"]["accuracy"] == 0.5
    ids, scores, pred = run.predictions()
    assert ids == ["a", "b"] and scores.dtype == np.float32 and pred.dtype == np.uint8
    with np.load(run.path / "predictions.npz", allow_pickle=False) as npz:
        assert npz["ids"].dtype.kind == "U"
    assert (run.model_dir / "weights.txt").read_text() == "w"
    log = (run.path / "log.txt").read_text().splitlines()
    assert len(log) == 2 and log[0].endswith(" hello") and log[1].endswith(" world")
    assert load_run(str(w.path)).name == w.name  # by path
    assert w.run.name == w.name


def test_write_json_run_json_merges_into_info(runs_dir):
    with create_run("finetune", "x") as w:
        w.write_json("run.json", {"config": {"lr": 1e-4}, "status": "bogus", "name": "hijack"})
    info = load_run(w.name).info
    assert info["config"] == {"lr": 1e-4} and info["status"] == "complete" and info["name"] == w.name


def test_exception_inside_with_leaves_nothing(runs_dir):
    with pytest.raises(ValueError, match="boom"):
        with create_run("baseline", "m") as w:
            w.write_json("metrics.json", {})
            raise ValueError("boom")
    assert list(runs_dir.iterdir()) == []
    assert list_runs() == []


def test_keyboard_interrupt_inside_with_leaves_nothing(runs_dir):
    with pytest.raises(KeyboardInterrupt):
        with create_run("baseline", "m") as w:
            (w.model_dir / "partial.bin").write_bytes(b"x" * 10)
            raise KeyboardInterrupt
    assert list(runs_dir.iterdir()) == []


_KILL_CHILD = """
import os, signal, sys
from nlpkit.runs import create_run
w = create_run("baseline", "killed", runs_root=sys.argv[1])
w.__enter__()
w.write_json("metrics.json", {"half": True})
(w.model_dir / "weights.bin").write_bytes(b"0" * 1000)
print(w.name, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_process_leaves_no_listed_run(runs_dir):
    _make_run(model="ok")
    proc = subprocess.run([sys.executable, "-c", _KILL_CHILD, str(runs_dir)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    name = proc.stdout.strip()
    assert (runs_dir / f".tmp-{name}" / "metrics.json").exists()  # it really was killed mid-write
    assert [r.model for r in list_runs()] == ["ok"]
    assert runs.unfinished_runs() == [runs_dir / f".tmp-{name}"]
    with pytest.raises(NlpkitError, match="not a complete run"):
        load_run(runs_dir / f".tmp-{name}")
    with pytest.raises(NlpkitError, match="run not found"):
        load_run(name)


def _create_after_barrier(args):
    root, barrier = args
    barrier.wait()
    with create_run("baseline", "same", runs_root=root) as w:
        w.write_json("metrics.json", {})
    return w.name


def _worker(root, barrier, queue):
    queue.put(_create_after_barrier((root, barrier)))


def test_concurrent_processes_get_distinct_names(runs_dir):
    n = 8
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(runs_dir), barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    names = [queue.get(timeout=60) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(set(names)) == n
    assert sorted(r.name for r in list_runs()) == sorted(names)


def test_concurrent_threads_get_distinct_names(runs_dir):
    n = 16
    barrier = threading.Barrier(n)
    names: list[str] = []
    lock = threading.Lock()

    def work():
        name = _create_after_barrier((runs_dir, barrier))
        with lock:
            names.append(name)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == n == len(list_runs())


def test_name_collision_retries(runs_dir, monkeypatch):
    monkeypatch.setattr(runs, "_name_timestamp", lambda: "20260101-000000")
    tokens = iter(["aaaaaa", "aaaaaa", "cccccc", "cccccc", "bbbbbb"])
    monkeypatch.setattr(runs.secrets, "token_hex", lambda n: next(tokens))
    first = _make_run()  # takes "aaaaaa"
    (runs_dir / ".tmp-20260101-000000-m-cccccc").mkdir()  # another process is writing "cccccc"
    second = _make_run()  # "aaaaaa" is published, "cccccc" is held twice, so "bbbbbb"
    assert first.name == "20260101-000000-m-aaaaaa"
    assert second.name == "20260101-000000-m-bbbbbb"
    assert [r.name for r in list_runs()] == [first.name, second.name]


def test_list_runs_filters_and_skips(runs_dir):
    a = _make_run(model="a", data={"split_sha256": "s1"})
    b = _make_run(model="b", kind="finetune", data={"split_sha256": "s2"})
    (runs_dir / "not-a-run").mkdir()
    (runs_dir / "broken").mkdir()
    (runs_dir / "broken" / "run.json").write_text("{")
    (runs_dir / "running").mkdir()
    (runs_dir / "running" / "run.json").write_text(json.dumps({"status": "running"}))
    (runs_dir / ".hidden").mkdir()
    (runs_dir / ".hidden" / "run.json").write_text(json.dumps({"status": "complete"}))
    (runs_dir / "file.txt").write_text("x")
    assert [r.name for r in list_runs()] == sorted([a.name, b.name])
    assert [r.name for r in list_runs(kind="finetune")] == [b.name]
    assert [r.name for r in list_runs(split_sha256="s1")] == [a.name]
    assert list_runs(split_sha256="zzz") == []
    assert list_runs(runs_dir / "does-not-exist") == []


def test_load_run_errors(runs_dir, tmp_path):
    with pytest.raises(NlpkitError, match="run not found: nope"):
        load_run("nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(NlpkitError, match="not a complete run: .*no run.json"):
        load_run(tmp_path / "plain")
    (tmp_path / "plain" / "run.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(NlpkitError, match="status 'running'"):
        load_run(tmp_path / "plain")
    (tmp_path / "f").write_text("x")
    with pytest.raises(NlpkitError, match="is a file"):
        load_run(tmp_path / "f")


def test_run_without_metrics_or_predictions_errors(runs_dir):
    with create_run("pretrain", "mlm") as w:
        pass
    run = load_run(w.name)
    with pytest.raises(NlpkitError, match="no metrics.json"):
        run.metrics()
    with pytest.raises(NlpkitError, match="no predictions.npz"):
        run.predictions()


def _damage(path, how: str) -> None:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "corrupted":  # every byte of the compressed members flipped, the zip directory intact
        start, end = 60, len(data) - 400
        path.write_bytes(data[:start] + bytes(b ^ 0xFF for b in data[start:end]) + data[end:])
    else:  # a member missing
        import zipfile

        with zipfile.ZipFile(path, "w") as z:
            z.writestr("ids.npy", b"")


@pytest.mark.parametrize("how, reason", [("empty", "empty file"), ("truncated", "File is not a zip file"),
                                         ("corrupted", ""), ("member", "")])
def test_damaged_predictions_are_a_one_line_error_naming_run_and_file(runs_dir, how, reason):
    with create_run("baseline", "m") as w:
        w.write_predictions([f"d{i}" for i in range(300)], np.random.default_rng(0).random((300, 8)),
                            np.zeros((300, 8)))
    run = load_run(w.name)
    _damage(run.path / "predictions.npz", how)
    with pytest.raises(NlpkitError) as info:
        run.predictions()
    message = str(info.value)
    assert message.startswith(f"run {run.name}: cannot read {run.path / 'predictions.npz'} (")
    assert reason in message and "\n" not in message
    assert message.endswith(f"); the file is damaged. Re-run that model, or delete {run.path}.")


def test_predictions_that_do_not_line_up_are_an_error(runs_dir):
    with create_run("baseline", "m") as w:
        w.write_predictions(["a", "b"], np.zeros((2, 3)), np.zeros((2, 3)))
    run = load_run(w.name)
    np.savez_compressed(run.path / "predictions.npz", ids=np.array(["a", "b"]), scores=np.zeros((2, 3)),
                        pred=np.zeros((2, 2)))
    with pytest.raises(NlpkitError, match=r"predictions.npz does not line up \(2 ids, scores \(2, 3\), pred \(2, 2\)\)"):
        run.predictions()


def test_bad_kind_and_misaligned_predictions(runs_dir):
    with pytest.raises(NlpkitError, match="unknown run kind 'train'"):
        create_run("train", "m")
    with pytest.raises(ValueError, match="do not line up"):
        with create_run("baseline", "m") as w:
            w.write_predictions(["a"], np.zeros((2, 2)), np.zeros((2, 2)))
    assert list(runs_dir.iterdir()) == []


def test_write_outside_run_folder_is_refused(runs_dir):
    with pytest.raises(ValueError, match="inside the run folder"):
        with create_run("baseline", "m") as w:
            w.write_json("../escape.json", {})
    assert not (runs_dir / "escape.json").exists()


def test_unwritable_runs_root_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NlpkitError, match="cannot create runs folder"):
        create_run("baseline", "m", runs_root=blocker / "sub")


def test_model_name_is_sanitised(runs_dir):
    w = _make_run(model="org/bert base")
    assert "/" not in w.name and w.path.parent == runs_dir
    assert load_run(w.name).model == "org/bert base"


def test_package_versions_does_not_import_torch():
    code = ("import sys; from nlpkit.runs import package_versions; v = package_versions(); "
            "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules; print(sorted(v))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    v = package_versions()
    for key in ("python", "nlpkit", "numpy", "scipy", "sklearn"):
        assert v[key]


def test_files_handed_to_users_get_ordinary_permissions(tmp_path):
    # Temporary files are private (0600); what is renamed into place must not stay so.

    from nlpkit._io import atomic_write_text, temp_dir_beside

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", ["x\n", "y\n"])
        folder = temp_dir_beside(tmp_path / "out")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text() == "x\ny\n"
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert folder.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".a.txt")] == []


def test_every_run_records_the_machine_it_ran_on(monkeypatch):
    import torch

    from nlpkit.runs import machine_info

    cpu = machine_info()
    assert cpu["device"] == "cpu" and cpu["cpu_cores"] >= 1 and cpu["cpu"] and "gpu" not in cpu
    assert cpu["torch_threads"] == torch.get_num_threads()  # torch is loaded here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: f"Fake GPU {index}")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    gpu = machine_info("cuda:1")
    assert gpu["device"] == "gpu" and gpu["gpu"] == "Fake GPU 1" and gpu["gpus"] == 2
    assert machine_info("cpu")["device"] == "cpu"


def test_a_baseline_run_json_has_its_machine(tmp_path, runs_dir):
    from typer.testing import CliRunner

    from nlpkit.cli import app
    from nlpkit.runs import list_runs

    split = tmp_path / "split"
    assert CliRunner().invoke(app, ["split", str(REPO / "data" / "agnews_sample.jsonl"), "--out", str(split)]).exit_code == 0
    assert CliRunner().invoke(app, ["baseline", str(split), "-m", "majority"]).exit_code == 0
    (run,) = list_runs(runs_dir)
    assert run.info["machine"]["device"] == "cpu" and run.info["machine"]["cpu_cores"] >= 1

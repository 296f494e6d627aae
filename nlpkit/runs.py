"""The run registry: create a run directory atomically, list complete runs, load one back.

A run is a folder ``<root>/<YYYYmmdd-HHMMSS>-<model>-<6 hex>/`` holding ``run.json``,
``metrics.json``, ``predictions.npz``, ``model/`` and ``log.txt`` (see docs/architecture.md).
While it is being written it lives in ``<root>/.tmp-<name>/``; only a clean exit renames it into
place, after ``run.json`` (with ``"status": "complete"`` as its last key) has been fsynced. A
process killed half-way therefore leaves a dot-folder that :func:`list_runs` never shows; it records
its owner (:mod:`nlpkit._io`), and the next run in the same root removes it once that owner is gone.
Removing a run (:func:`remove_runs`) is the reverse: rename to ``.removing-<name>``, then delete.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import secrets
import shutil
import zipfile
import zlib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from nlpkit._io import (OWNER_FILE, is_full_disk, is_stale, naming, remove_stale,  # noqa: F401 - to_jsonable: public here too
                        to_jsonable, write_owner_file)
from nlpkit.errors import ConfigError, NlpkitError

RUN_KINDS = ("baseline", "finetune", "pretrain")
RUN_JSON = "run.json"
METRICS_JSON = "metrics.json"
PREDICTIONS_NPZ = "predictions.npz"
LOG_TXT = "log.txt"
MODEL_DIR = "model"
TMP_PREFIX = ".tmp-"
REMOVING_PREFIX = ".removing-"
ENV_VAR = "NLPKIT_RUNS_DIR"

_NAME_RE = re.compile(r"^\d{8}-\d{6}-.+-[0-9a-f]{6}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_NAME_ATTEMPTS = 100


def runs_root(path: str | os.PathLike | None = None) -> Path:
    """Where runs live: ``path`` if given, else ``$NLPKIT_RUNS_DIR``, else ``./runs``."""
    if path is not None and str(path) != "":
        return Path(path)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path("runs")


def check_runs_root(path: str | os.PathLike | None = None) -> Path:
    """The registry folder, checked before a long job: a run recorded only at its end must not fail there.

    Nothing is created; the first existing folder on the way must be a writable folder.
    """
    root = runs_root(path)
    existing = next(p for p in [root, *root.absolute().parents] if p.exists())
    if not existing.is_dir():
        raise NlpkitError(f"cannot create runs folder {root}: {existing} is a file. Pass --runs-dir to a writable folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NlpkitError(f"cannot create runs folder {root}: {existing} is not writable. Pass --runs-dir to a writable folder.")
    return root


def utc_now() -> str:
    """Current time as ISO-8601 UTC with a ``Z`` suffix, second precision."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions() -> dict[str, str]:
    """Versions of Python, nlpkit and the libraries a result may depend on.

    Uses installed-distribution metadata rather than importing, so recording versions never
    pulls torch or transformers into a process that does not otherwise need them.
    """
    import nlpkit

    versions = {"python": platform.python_version(), "nlpkit": nlpkit.__version__}
    # key -> distribution names to try, first installed wins
    dists = {
        "numpy": ("numpy",),
        "scipy": ("scipy",),
        "sklearn": ("scikit-learn",),
        "pandas": ("pandas",),
        "torch": ("torch",),
        "transformers": ("transformers",),
        "tokenizers": ("tokenizers",),
        "fasttext": ("fasttext-numpy2", "fasttext", "fasttext-wheel"),
        "gensim": ("gensim",),
    }
    for key, names in dists.items():
        for dist in names:
            try:
                versions[key] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def machine_info(device: str | None = None) -> dict[str, Any]:
    """Where a run trained and predicted: CPU model, logical cores, the torch threads if torch is
    loaded, and the GPU when ``device`` is a CUDA device; reports show it beside the cost figures."""
    import platform
    import sys

    info: dict[str, Any] = {"cpu": _cpu_model() or platform.processor() or platform.machine(),
                            "cpu_cores": os.cpu_count(), "platform": platform.platform(terse=True)}
    torch = sys.modules.get("torch")  # never imported for this: a baseline run does not load torch
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
    if device and str(device).startswith("cuda") and torch is not None and torch.cuda.is_available():
        index = torch.device(device).index or 0
        info["gpu"] = torch.cuda.get_device_name(index)
        info["gpus"] = torch.cuda.device_count()
    info["device"] = "gpu" if "gpu" in info else "cpu"
    return info


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _dump_json(path: Path, obj: Any) -> None:
    text = json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text + "\n")


def _fsync_path(path: Path) -> None:
    """fsync one file or directory (best effort on platforms without directory fsync)."""
    flags = os.O_RDONLY
    if path.is_dir():
        flags |= getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _safe_model_tag(model: str) -> str:
    tag = _UNSAFE_CHARS.sub("_", str(model)).strip("._-")
    return tag[:60] or "model"


def _name_timestamp() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def _reserve_name(root: Path, model: str) -> tuple[str, Path]:
    """Pick ``<time>-<model>-<hex>`` and create its ``.tmp-`` folder exclusively.

    ``os.mkdir`` fails if the folder exists, so two processes can never hold the same name; a
    name whose final folder already exists is skipped too. The folder records its owner, and
    unfinished runs of processes that are gone are removed first.
    """
    remove_stale(root, TMP_PREFIX)
    tag = _safe_model_tag(model)
    for _ in range(_MAX_NAME_ATTEMPTS):
        stamp = _name_timestamp()
        name = f"{stamp}-{tag}-{secrets.token_hex(3)}"
        tmp = root / f"{TMP_PREFIX}{name}"
        try:
            os.mkdir(tmp)
        except FileExistsError:
            continue
        if (root / name).exists():
            os.rmdir(tmp)
            continue
        try:
            write_owner_file(tmp)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_full_disk(exc):
                raise naming(exc, root / name) from None
            raise
        return name, tmp
    raise NlpkitError(f"could not find a free run name under {root} after {_MAX_NAME_ATTEMPTS} tries; check the folder.")


class RunWriter:
    """Context manager that writes one run into ``<root>/.tmp-<name>/`` and publishes it on success.

    Put ``run.json`` fields in :attr:`info` (or pass them to ``write_json("run.json", ...)``, which
    merges them); the writer adds ``name``, ``kind``, ``model``, ``created`` and, last,
    ``"status": "complete"`` when the ``with`` block exits cleanly. Any exception — including
    ``KeyboardInterrupt`` — removes the temporary folder and propagates.

    After a clean exit :attr:`path` and :attr:`model_dir` point at the final folder and
    :attr:`run` returns the loaded :class:`Run`.
    """

    def __init__(self, kind: str, model: str, root: Path):
        self.kind = kind
        self.model = model
        self.root = root
        self.created = utc_now()
        self.info: dict[str, Any] = {}
        self.name, self.path = _reserve_name(root, model)
        self.final_path = root / self.name
        self.committed = False
        self._closed = False

    # -- writing -----------------------------------------------------------------------------
    def _target(self, filename: str | os.PathLike) -> Path:
        if self._closed:
            raise RuntimeError(f"run {self.name} is already closed; write inside the with-block")
        rel = Path(filename)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"run file name must be relative and inside the run folder: {filename!r}")
        target = self.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def model_dir(self) -> Path:
        """Folder for ``Classifier.save`` (created on first access)."""
        path = self.path / MODEL_DIR
        if not self._closed:
            path.mkdir(exist_ok=True)
        return path

    def write_json(self, filename: str, obj: Any) -> Path:
        """Write ``obj`` as indented UTF-8 JSON; ``run.json`` is merged into :attr:`info` instead."""
        if Path(filename).as_posix() == RUN_JSON:
            if not isinstance(obj, dict):
                raise TypeError("run.json content must be a dict")
            self.info.update(obj)
            return self.path / RUN_JSON
        target = self._target(filename)
        _dump_json(target, obj)
        return target

    def write_predictions(self, ids: Sequence[str], scores: np.ndarray, pred: np.ndarray) -> Path:
        """Write ``predictions.npz``: ids (unicode), scores (float32 n x L), pred (uint8 n x L)."""
        ids_arr = np.asarray([str(i) for i in ids], dtype=np.str_)
        scores_arr = np.asarray(scores, dtype=np.float32)
        pred_arr = np.asarray(pred).astype(np.uint8)
        if scores_arr.ndim != 2 or pred_arr.shape != scores_arr.shape or len(ids_arr) != scores_arr.shape[0]:
            raise ValueError(
                f"predictions do not line up: {len(ids_arr)} ids, scores {scores_arr.shape}, pred {pred_arr.shape}"
            )
        target = self._target(PREDICTIONS_NPZ)
        with open(target, "wb") as fh:
            np.savez_compressed(fh, ids=ids_arr, scores=scores_arr, pred=pred_arr)
        return target

    def log(self, msg: str) -> None:
        """Append ``msg`` to ``log.txt``, each line prefixed with a UTC timestamp."""
        target = self._target(LOG_TXT)
        stamp = utc_now()
        lines = str(msg).splitlines() or [""]
        with open(target, "a", encoding="utf-8", newline="\n") as fh:
            for line in lines:
                fh.write(f"{stamp} {line}\n")

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            try:
                self._commit()
            except BaseException as error:
                self._discard()
                if is_full_disk(error):
                    raise naming(error, self.final_path) from None
                raise
        else:
            self._discard()
            if is_full_disk(exc) and exc.filename is None:
                # A failed write names no file: name the run the user would have got.
                raise naming(exc, self.final_path) from None
        return False

    def _discard(self) -> None:
        self._closed = True
        shutil.rmtree(self.path, ignore_errors=True)

    def _commit(self) -> None:
        info = {"name": self.name, "kind": self.kind, "model": self.model, "created": self.created}
        info.update({k: v for k, v in self.info.items() if k not in ("name", "kind", "model", "status")})
        info["status"] = "complete"  # last key: a reader that sees it knows the file is whole
        _dump_json(self.path / RUN_JSON, info)
        (self.path / OWNER_FILE).unlink(missing_ok=True)  # a temporary folder's record, not part of the run
        # Everything on disk before the rename makes the run visible (a crash after it must not
        # expose a folder whose files are still in the page cache only).
        for dirpath, _dirnames, filenames in os.walk(self.path):
            for fn in filenames:
                _fsync_path(Path(dirpath) / fn)
            _fsync_path(Path(dirpath))
        if self.final_path.exists():  # only possible if someone created it by hand meanwhile
            raise NlpkitError(f"run folder {self.final_path} appeared while writing; remove it and re-run.")
        os.rename(self.path, self.final_path)
        _fsync_path(self.root)
        self.path = self.final_path
        self.info = info
        self.committed = True
        self._closed = True

    @property
    def run(self) -> "Run":
        """The published run (after a clean exit of the ``with`` block)."""
        if not self.committed:
            raise RuntimeError(f"run {self.name} is not complete yet")
        return load_run(self.final_path)


_runs_root_fn = runs_root  # create_run's ``runs_root`` parameter shadows the function


def create_run(kind: str, model: str, runs_root: str | os.PathLike | None = None) -> RunWriter:
    """Start a run of ``kind`` (baseline|finetune|pretrain) for ``model``; use as a context manager.

    Parameters
    ----------
    kind : one of ``RUN_KINDS``.
    model : model family or name; it becomes part of the folder name.
    runs_root : the registry folder; default ``$NLPKIT_RUNS_DIR`` or ``./runs`` (created if needed).
    """
    if kind not in RUN_KINDS:
        raise NlpkitError(f"unknown run kind {kind!r}; use one of: {', '.join(RUN_KINDS)}.")
    root = _runs_root_fn(runs_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NlpkitError(f"cannot create runs folder {root}: {exc.strerror}. Pass --runs-dir to a writable folder.")
    if not root.is_dir():
        raise NlpkitError(f"runs folder {root} is not a directory; pass --runs-dir to a folder.")
    return RunWriter(kind, model, root)


@dataclass
class Run:
    """One complete run folder and its ``run.json``."""

    path: Path
    name: str
    info: dict = field(repr=False)

    @property
    def kind(self) -> str:
        return self.info.get("kind", "")

    @property
    def model(self) -> str:
        return self.info.get("model", "")

    @property
    def created(self) -> str:
        return self.info.get("created", "")

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    @property
    def split_sha256(self) -> str | None:
        return (self.info.get("data") or {}).get("split_sha256")

    @property
    def role(self) -> str | None:
        """None for an ordinary run; ``"tune-trial"`` for a trial of ``nlpkit finetune --tune`` (not a
        contender in reports), ``"tuned"`` for the trial that search kept."""
        return self.info.get("role")

    def update_info(self, **fields: Any) -> None:
        """Add ``fields`` to a complete run's run.json (written atomically)."""
        from nlpkit._io import atomic_write_json

        self.info.update(fields)
        atomic_write_json(self.path / RUN_JSON, self.info)

    def metrics(self) -> dict:
        """``metrics.json``: ``{"test": evaluate(...), "valid": evaluate(...)}``."""
        path = self.path / METRICS_JSON
        if not path.is_file():
            raise NlpkitError(f"run {self.name} has no {METRICS_JSON} ({self.path}); it records no evaluation.")
        return _read_json(path)

    def predictions(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Test-part ``(ids, scores float32 n x L, pred uint8 n x L)`` from ``predictions.npz``."""
        path = self.path / PREDICTIONS_NPZ
        if not path.is_file():
            raise NlpkitError(
                f"run {self.name} has no {PREDICTIONS_NPZ} ({self.path}); it records no predictions. "
                f"Re-run that model, or delete {self.path}."
            )
        try:
            with np.load(path, allow_pickle=False) as npz:
                ids, scores, pred = [str(i) for i in npz["ids"]], npz["scores"], npz["pred"]
        # A truncated or empty file: BadZipFile, or EOFError -- which click would turn into a bare
        # "Aborted!"; a damaged member: zlib.error or ValueError; a missing one: KeyError.
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            reason = "empty file" if path.stat().st_size == 0 else " ".join(str(exc).split()) or type(exc).__name__
            raise NlpkitError(
                f"run {self.name}: cannot read {path} ({reason}); the file is damaged. "
                f"Re-run that model, or delete {self.path}."
            ) from None
        if scores.ndim != 2 or pred.shape != scores.shape or len(ids) != scores.shape[0]:
            raise NlpkitError(
                f"run {self.name}: {path} does not line up ({len(ids)} ids, scores {scores.shape}, pred "
                f"{pred.shape}); the file is damaged. Re-run that model, or delete {self.path}."
            )
        return ids, scores, pred


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise NlpkitError(f"cannot read {path}: {exc}. The run is damaged; re-run it or delete the folder.") from None


def _read_complete(path: Path) -> Run | None:
    """The run in ``path`` if its run.json says complete, else None (never raises)."""
    try:
        with open(path / RUN_JSON, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("status") != "complete":
        return None
    return Run(path=path, name=path.name, info=info)


def _iter_run_dirs(root: Path) -> Iterable[Path]:
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir()]


def list_runs(root: str | os.PathLike | None = None, *, split_sha256: str | None = None,
              kind: str | None = None) -> list[Run]:
    """Complete runs under ``root``, sorted by name (i.e. by start time).

    Folders starting with a dot (runs being written or killed half-way) and folders without a
    complete ``run.json`` are skipped. ``split_sha256`` / ``kind`` filter on run.json fields.
    """
    runs = []
    for path in _iter_run_dirs(runs_root(root)):
        run = _read_complete(path)
        if run is None:
            continue
        if kind is not None and run.kind != kind:
            continue
        if split_sha256 is not None and run.split_sha256 != split_sha256:
            continue
        runs.append(run)
    runs.sort(key=lambda r: r.name)
    return runs


def unfinished_runs(root: str | os.PathLike | None = None, *, abandoned: bool | None = None) -> list[Path]:
    """``.tmp-*`` folders under ``root``: runs in progress, or left by a killed process.

    ``abandoned=True`` keeps only those whose recorded owner is provably gone (the next run removes
    them), ``False`` only the others (running, or of unknown owner); None keeps all.
    """
    root = runs_root(root)
    try:
        entries = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return []
    paths = sorted(Path(e.path) for e in entries if e.name.startswith(TMP_PREFIX) and e.is_dir())
    if abandoned is None:
        return paths
    return [p for p in paths if is_stale(p) == abandoned]


def load_run(path_or_name: str | os.PathLike, root: str | os.PathLike | None = None) -> Run:
    """Load a complete run from a folder path, or by name under the runs root.

    Raises
    ------
    NlpkitError
        The folder does not exist, or holds no complete run (interrupted, or not a run).
    """
    given = Path(path_or_name)
    candidates = [given]
    if not given.is_absolute() and len(given.parts) == 1:
        candidates.append(runs_root(root) / given)
    path = next((c for c in candidates if c.exists()), None)
    if path is None:
        where = " or ".join(str(c) for c in candidates)
        raise NlpkitError(f"run not found: {path_or_name} (looked for {where}). List runs with `nlpkit runs`.")
    if not path.is_dir():
        raise NlpkitError(f"not a run folder: {path} is a file. Pass the run's folder.")
    if path.name.startswith(TMP_PREFIX):
        raise NlpkitError(f"not a complete run: {path} is an unfinished run (interrupted or still running); re-run it.")
    run_json = path / RUN_JSON
    if not run_json.is_file():
        raise NlpkitError(f"not a complete run: {path} has no {RUN_JSON}. Pass a folder listed by `nlpkit runs`.")
    info = _read_json(run_json)
    if not isinstance(info, dict) or info.get("status") != "complete":
        status = info.get("status") if isinstance(info, dict) else None
        raise NlpkitError(f"not a complete run: {run_json} has status {status!r}, not 'complete'; re-run it.")
    return Run(path=path, name=path.name, info=info)


# --- removing runs -----------------------------------------------------------------------------

_AGE_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_age(text: str) -> float:
    """'30d', '2w', '12h', '1d12h', '90m', '45s' -> seconds (``nlpkit runs --older-than``).

    A unit is required: a bare number could mean seconds or days, and a wrong guess removes runs.
    """
    s = str(text).strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+(?:\.\d+)?)([wdhms])", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise ConfigError(f"--older-than {text!r} is not an age; write e.g. 30d, 2w, 12h, 1d12h or 90m.")
    return sum(float(n) * _AGE_UNITS[u] for n, u in parts)


def _created_at(run: Run) -> _dt.datetime | None:
    """The run's ``created`` time (UTC), or None when missing or unreadable."""
    try:
        when = _dt.datetime.fromisoformat(str(run.created).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=_dt.timezone.utc)


def select_runs(root: str | os.PathLike | None = None, *, role: str | None = None,
                older_than_seconds: float | None = None, split_sha256: str | None = None,
                kind: str | None = None, now: _dt.datetime | None = None) -> list[Run]:
    """Complete runs under ``root`` matching every filter given, sorted by name.

    Parameters
    ----------
    role : run.json ``role``, e.g. ``"tune-trial"``.
    older_than_seconds : runs ``created`` more than this long before ``now`` (default: the current
        time); a run without a readable ``created`` time never matches.
    split_sha256 : the fingerprint of the split folder the runs were scored on.
    kind : baseline, finetune or pretrain.

    Raises
    ------
    ValueError
        No filter is given: this feeds :func:`remove_runs`, so "no filter" must never mean every run
        (use :func:`list_runs` for that).
    """
    if role is None and older_than_seconds is None and split_sha256 is None and kind is None:
        raise ValueError("select_runs needs at least one filter; list_runs() returns every run")
    now = now or _dt.datetime.now(_dt.timezone.utc)
    selected = []
    for run in list_runs(root, split_sha256=split_sha256, kind=kind):
        if role is not None and run.role != role:
            continue
        if older_than_seconds is not None:
            created = _created_at(run)
            if created is None or (now - created).total_seconds() <= older_than_seconds:
                continue
        selected.append(run)
    return selected


def find_run(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> Run:
    """A complete run by folder path or name (as :func:`load_run`), or by a unique prefix of its name.

    Raises
    ------
    NlpkitError
        No such run, or a prefix that matches several runs.
    """
    given = Path(name_or_path)
    root_path = runs_root(root)
    is_name = str(name_or_path) != "" and not given.is_absolute() and len(given.parts) == 1
    if not is_name or given.exists() or (root_path / given).exists():
        return load_run(name_or_path, root_path)
    matches = [run for run in list_runs(root_path) if run.name.startswith(given.name)]
    if len(matches) > 1:
        shown = ", ".join(run.name for run in matches[:3]) + (", ..." if len(matches) > 3 else "")
        raise NlpkitError(f"run {str(name_or_path)!r} matches {len(matches)} runs ({shown}); pass more of the name.")
    if matches:
        return matches[0]
    return load_run(name_or_path, root_path)  # raises "run not found", naming where it looked


def check_removable(run: Run, root: str | os.PathLike | None = None) -> None:
    """Raise :class:`NlpkitError` unless ``run`` is a complete run folder directly inside ``root``.

    Removal deletes a whole tree, so anything else -- a folder in another registry, a hidden or
    unfinished folder, a link, a folder without a complete run.json -- is refused.
    """
    root_path = runs_root(root)
    path = Path(run.path)
    if path.is_symlink():
        raise NlpkitError(f"not removed: {path} is a symbolic link, not a run folder; delete the link itself if you mean to.")
    if path.name.startswith("."):
        raise NlpkitError(f"not removed: {path} is a hidden folder, not a run listed by `nlpkit runs`.")
    if path.absolute().parent.resolve() != root_path.absolute().resolve():
        raise NlpkitError(f"not removed: {path} is not inside the runs folder {root_path}; "
                          f"pass --runs-dir {path.absolute().parent} to remove runs there.")
    if _read_complete(path) is None:
        raise NlpkitError(f"not removed: {path} holds no complete run (no run.json with status complete); "
                          "only folders listed by `nlpkit runs` are removed.")


def _delete_tree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:  # another remover cleaning the same leftover got there first
        pass


def interrupted_removals(root: str | os.PathLike | None = None) -> list[Path]:
    """``.removing-*`` folders under ``root``: runs whose removal stopped after the rename."""
    try:
        entries = list(os.scandir(runs_root(root)))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(Path(e.path) for e in entries
                  if e.name.startswith(REMOVING_PREFIX) and e.is_dir(follow_symlinks=False))


def remove_runs(runs: Iterable[Run | str | os.PathLike], root: str | os.PathLike | None = None) -> list[str]:
    """Remove complete runs (Run objects, names, paths or unique name prefixes) from ``root``.

    Every run is checked first (:func:`check_removable`), so one bad entry removes nothing. Each run
    folder is then renamed to ``.removing-<name>`` in the same folder -- atomic, and a dot folder is
    never listed -- and only then deleted, so no reader ever sees half a run. A crash between the
    two leaves the hidden folder, which the next call here deletes first.

    Returns
    -------
    The names of the runs removed (a run another process removed meanwhile is not among them).
    """
    root_path = runs_root(root)
    targets: dict[Path, Run] = {}
    for item in runs:
        run = item if isinstance(item, Run) else find_run(item, root_path)
        check_removable(run, root_path)
        targets.setdefault(Path(run.path).absolute(), run)
    for leftover in interrupted_removals(root_path):
        _delete_tree(leftover)
    removed = []
    for run in targets.values():
        hidden = root_path / f"{REMOVING_PREFIX}{run.name}"
        try:
            os.rename(run.path, hidden)
        except FileNotFoundError:  # removed by another process since it was checked
            continue
        _fsync_path(root_path)  # the rename is on disk before the tree goes
        _delete_tree(hidden)
        removed.append(run.name)
    return removed

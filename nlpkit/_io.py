"""Atomic writes for every file nlpkit hands to a user: complete or absent, never half-written.

Temporary files and folders from :mod:`tempfile` are private (0600 / 0700); what we rename into place
gets the permissions an ordinary write would have (0666 / 0777 less the umask).

Every temporary file or folder carries an owner record -- host name, pid and the process's start
time -- so that the next process writing in the same place can remove the debris of one killed with
``kill -9`` (:func:`remove_stale`), and only when its owner is provably gone on this host. The
record is a suffix of the temporary name (``~<pid>.<start>@<host>``); a folder whose name is fixed
(a run's ``.tmp-<name>``, which also reserves ``<name>``) holds it in an :data:`OWNER_FILE` instead.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OWNER_FILE = ".owner"
# A full disk, a full quota, a file over the size limit: the user frees space or writes elsewhere.
FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)})

_OWNER_RE = re.compile(r"~(\d+)\.(\d+|-)@([A-Za-z0-9.-]+)$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,64}$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def give_ordinary_mode(path) -> None:
    """Give ``path`` the mode an ordinary write would (0666 less the umask): safetensors and mkstemp
    write 0600, and a model folder copied to a shared place would be unreadable by others."""
    os.chmod(path, 0o666 & ~_umask())


# --- owner records ----------------------------------------------------------------------------

def _host() -> str:
    """This host's name as it appears in an owner record (a digest when it has other characters)."""
    name = socket.gethostname()
    if _HOST_RE.match(name):
        return name
    return "h" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def process_start_time(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat, Linux).

    None where it cannot be read (no such process, no /proc). With the pid it names one process for
    the life of the machine: a pid reused later has another start time.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        # The command name (field 2) may hold spaces and parentheses: fields resume after the last ")".
        return int(stat[stat.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _process_gone(pid: int) -> bool | None:
    """True if no live process has ``pid`` (a zombie is dead), False if one has, None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rindex(b")") + 2:][:1] in (b"Z", b"X")
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return True
    except (OSError, ValueError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists under another user
        return False
    return False


@dataclass(frozen=True)
class Owner:
    """The process that made a temporary file or folder."""

    host: str
    pid: int
    start: int | None

    @classmethod
    def me(cls) -> "Owner":
        return cls(_host(), os.getpid(), process_start_time(os.getpid()))

    @property
    def suffix(self) -> str:
        return f"~{self.pid}.{'-' if self.start is None else self.start}@{self.host}"

    @classmethod
    def parse(cls, text: str) -> "Owner | None":
        """The owner in a temporary name (its suffix) or in an :data:`OWNER_FILE`'s text; None if none."""
        match = _OWNER_RE.search(text.strip())
        if match is None:
            return None
        pid, start, host = match.groups()
        return cls(host, int(pid), None if start == "-" else int(start))

    def gone(self) -> bool:
        """Whether this owner is provably dead: on this host, with no process of that pid and start time.

        Another host's process, or one whose state cannot be read, counts as alive.
        """
        if self.host != _host():
            return False
        gone = _process_gone(self.pid)
        if gone is None or gone:
            return bool(gone)
        if self.start is None:
            return False
        now = process_start_time(self.pid)
        return now is not None and now != self.start  # the pid was reused by another process


def owner_of(path) -> Owner | None:
    """The owner recorded for a temporary file or folder: in its name, else in its :data:`OWNER_FILE`."""
    path = Path(path)
    owner = Owner.parse(path.name)
    if owner is not None:
        return owner
    try:
        return Owner.parse((path / OWNER_FILE).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None


def write_owner_file(folder) -> None:
    """Record this process as the owner of ``folder`` (for folders whose name cannot carry it)."""
    with open(Path(folder) / OWNER_FILE, "w", encoding="ascii") as fh:
        fh.write(Owner.me().suffix + "\n")


def is_stale(path) -> bool:
    """Whether ``path`` is a temporary file or folder whose recorded owner is provably gone (see :meth:`Owner.gone`)."""
    owner = owner_of(path)
    return owner is not None and owner.gone()


def remove_stale(folder, prefix: str) -> list[Path]:
    """Remove the entries of ``folder`` named ``prefix*`` left by processes that are provably gone.

    Entries without an owner record (older nlpkit, or not ours), another host's, and a live
    process's are never touched. Returns what was removed; errors are ignored (best effort).
    """
    removed = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix)]
    except OSError:
        return removed
    for entry in entries:
        path = Path(entry.path)
        if not is_stale(path):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError:
            continue
        removed.append(path)
    return removed


def owned_temp_file(folder, prefix: str) -> tuple[int, Path]:
    """``tempfile.mkstemp`` in ``folder`` whose name records this process; stale ``prefix*`` siblings go first."""
    remove_stale(folder, prefix)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=Owner.me().suffix)
    return fd, Path(tmp)


def owned_temp_dir(folder, prefix: str) -> Path:
    """``tempfile.mkdtemp`` in ``folder`` whose name records this process; stale ``prefix*`` siblings go first."""
    remove_stale(folder, prefix)
    return Path(tempfile.mkdtemp(dir=folder, prefix=prefix, suffix=Owner.me().suffix))


def owned_temp_name(path, tag: str = "tmp") -> Path:
    """A name beside ``path`` for a temporary file the caller creates itself (``open``, ``torch.save``)."""
    path = Path(path)
    prefix = f".{path.name}.{tag}-"
    remove_stale(path.parent, prefix)
    return path.with_name(f"{prefix}{os.urandom(4).hex()}{Owner.me().suffix}")


# --- full disk ---------------------------------------------------------------------------------

def is_full_disk(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in FULL_DISK_ERRNOS


def naming(exc: OSError, path) -> OSError:
    """``exc`` naming ``path`` if it names no file (a failed ``write`` does not), else ``exc`` itself."""
    if exc.filename is not None:
        return exc
    named = OSError(exc.errno, exc.strerror or str(exc), os.fspath(path))
    named.__traceback__ = exc.__traceback__
    return named


@contextlib.contextmanager
def full_disk_names(path) -> Iterator[None]:
    """A full disk inside the block is reported as writing ``path`` (files inside a temporary folder
    are reported under the folder's final name, which is what the user asked for)."""
    try:
        yield
    except OSError as exc:
        if not is_full_disk(exc) or exc.filename is not None:
            raise
        raise naming(exc, path) from None


def from_safetensors(exc: BaseException, path) -> OSError | None:
    """The OSError inside a safetensors ``SafetensorError`` ("... (os error 28) ..."), naming ``path``."""
    if type(exc).__name__ != "SafetensorError":
        return None
    match = re.search(r"os error (\d+)", str(exc))
    if match is None:
        return None
    code = int(match.group(1))
    return OSError(code, os.strerror(code), os.fspath(path))


def save_pretrained(obj, folder, **kwargs) -> None:
    """``obj.save_pretrained(folder)`` (a Hugging Face model or tokenizer), with two fixes.

    safetensors writes its files 0600 where everything beside them is 0666 less the umask, so a model
    folder copied to a shared place was unreadable by others: every file saved gets the ordinary mode.
    Its ``SafetensorError`` becomes the OSError it wraps, so a full disk is reported as one.
    """
    folder = Path(folder)
    before = set(os.listdir(folder)) if folder.is_dir() else set()
    try:
        with full_disk_names(folder):
            obj.save_pretrained(folder, **kwargs)
    except Exception as exc:
        converted = from_safetensors(exc, folder / "model.safetensors")
        if converted is None:
            raise
        raise converted from None
    for name in os.listdir(folder):
        target = folder / name
        if name.endswith(".safetensors") or name not in before:
            if target.is_file() and not target.is_symlink():
                give_ordinary_mode(target)


# --- JSON ---------------------------------------------------------------------------------------

def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays, paths, tuples and sets for ``json.dump``.

    Non-finite floats become ``None``: JSON has no NaN, and a metric that cannot be computed is
    reported as missing rather than as an invalid token.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [to_jsonable(v) for v in sorted(obj, key=str)]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def atomic_write_json(path, obj: Any) -> None:
    """``obj`` (through :func:`to_jsonable`) as indented UTF-8 JSON at ``path``, written atomically."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


# --- atomic writes -----------------------------------------------------------------------------

def atomic_write_text(path, content: str | Iterable[str], *, newline: str = "\n", fsync: bool = False) -> None:
    """Write ``content`` (a string or an iterable of strings) to ``path`` through a temporary sibling."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = owned_temp_file(path.parent, f".{path.name}.tmp-")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with full_disk_names(path), os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            if isinstance(content, str):
                fh.write(content)
            else:
                fh.writelines(content)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def temp_dir_beside(path, tag: str = "tmp") -> Path:
    """A new empty folder next to ``path`` (hidden name, recording its owner), with ordinary folder permissions.

    Folders of the same tag beside ``path`` left by a process that is gone are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = owned_temp_dir(path.parent, f".{path.name}.{tag}-")
    try:
        os.chmod(tmp, 0o777 & ~_umask())
    except BaseException:  # a Ctrl-C here: the caller never learns the name, so remove it now
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp

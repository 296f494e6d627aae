"""Atomic writes for every file nlpkit hands to a user: complete or absent, never half-written.

Temporary files and folders from :mod:`tempfile` are private (0600 / 0700); what we rename into place
gets the permissions an ordinary write would have (0666 / 0777 less the umask).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, content: str | Iterable[str], *, newline: str = "\n", fsync: bool = False) -> None:
    """Write ``content`` (a string or an iterable of strings) to ``path`` through a temporary sibling."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
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
    """A new empty folder next to ``path`` (hidden name), with ordinary folder permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{tag}-"))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp

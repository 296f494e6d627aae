"""``nlpkit report``: every classifier run on a split against the baseline, with uncertainty and cost.

``build_report`` (in :mod:`nlpkit.report.compare`) reads the runs and computes everything once into a
plain dict; the renderers only format that dict: :func:`render_markdown`, :func:`render_json`,
:func:`render_html`, and :func:`write_report` puts all three files in a folder atomically, as one set.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from nlpkit._io import is_full_disk, owned_temp_dir, temp_dir_beside
from nlpkit.errors import NlpkitError
from nlpkit.report.compare import BEST_BASELINE, build_report, verdict
from nlpkit.report.render_html import render_html
from nlpkit.report.render_text import leaderboard_table, render_json, render_markdown

__all__ = [
    "BEST_BASELINE",
    "REPORT_FILES",
    "build_report",
    "leaderboard_table",
    "render_html",
    "render_json",
    "render_markdown",
    "verdict",
    "write_report",
    "write_report_files",
]

REPORT_FILES = {"html": "report.html", "md": "report.md", "json": "report.json"}


def write_report(report: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Render and write report.html, report.md and report.json into ``out_dir``, as one set.

    Everything is rendered before anything is written, so a rendering error leaves the folder as it
    was. Returns the written paths by format.
    """
    texts = {"html": render_html(report), "md": render_markdown(report), "json": render_json(report)}
    return write_report_files({REPORT_FILES[fmt]: text for fmt, text in texts.items()}, out_dir)


def write_report_files(texts: dict[str, str], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``{file name: text}`` into the folder ``out_dir`` as one set: afterwards the folder
    holds all the new files, or -- after an error or Ctrl-C -- exactly what it held before.

    A new folder is written as a hidden sibling and renamed into place. An existing folder keeps
    whatever else it holds (``--out`` may be any folder): the files are written into a hidden
    temporary folder inside it (same file system, so each rename is atomic), the previous report
    files are kept aside, and the new ones renamed in; a failure part-way puts the previous ones back.
    Returns the written paths by format (the file name's extension).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NlpkitError(f"--out {out} is a file, not a folder; pass a folder for the report files.")
    for filename in texts:
        target = out / filename
        if target.is_dir():
            raise NlpkitError(
                f"--out {out}: {target} is a folder, not a report file; remove it or pass another --out folder."
            )
    created = [p for p in (out, *out.absolute().parents) if not p.exists()]  # to remove again on failure
    tmp = None
    try:
        if out.is_dir():
            tmp = owned_temp_dir(out, ".report.tmp-")
            _write_files(tmp, texts)
            _swap_into(tmp, out, list(texts))
        else:
            tmp = temp_dir_beside(out, "tmp")
            _write_files(tmp, texts)
            os.rename(tmp, out)  # fails, changing nothing, if something took the name meanwhile
            tmp = None
    except BaseException as exc:  # an error or Ctrl-C: leave nothing of this attempt behind
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp = None
        for folder in created:  # deepest first; only folders made here, and only while empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(exc, OSError):
            full = is_full_disk(exc)
            fix = "free some space or pass another --out folder" if full else "pass a writable --out folder"
            raise NlpkitError(f"cannot write the report into {out}: {exc.strerror or exc}; {fix}.") from None
        raise
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {Path(filename).suffix.lstrip("."): out / filename for filename in texts}


def _write_files(folder: Path, texts: dict[str, str]) -> None:
    for filename, text in texts.items():
        with open(folder / filename, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)


def _swap_into(tmp: Path, out: Path, names: list[str]) -> None:
    """Rename ``tmp/<name>`` over ``out/<name>`` for every name, all or none.

    Each previous file is first linked (or copied) into ``tmp/.previous``, so that a failure or
    interrupt after some renames can put the previous set back; readers never see a file missing.
    """
    previous = tmp / ".previous"
    previous.mkdir()
    for name in names:
        if (out / name).exists():
            try:
                os.link(out / name, previous / name)
            except OSError:  # a file system without hard links
                shutil.copy2(out / name, previous / name)
    placed = []
    try:
        for name in names:
            os.replace(tmp / name, out / name)
            placed.append(name)
    except BaseException:
        for name in placed:
            with contextlib.suppress(OSError):
                if (previous / name).exists():
                    os.replace(previous / name, out / name)
                else:
                    os.unlink(out / name)
        raise

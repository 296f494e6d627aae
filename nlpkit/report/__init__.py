"""``nlpkit report``: every classifier run on a split against the baseline, with uncertainty and cost.

``build_report`` (in :mod:`nlpkit.report.compare`) reads the runs and computes everything once into a
plain dict; the renderers only format that dict: :func:`render_markdown`, :func:`render_json`,
:func:`render_html`, and :func:`write_report` puts all three files in a folder atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from nlpkit._io import atomic_write_text
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


def _write_atomic(path: Path, text: str) -> None:
    """Write into a temporary sibling, then rename: readers see the old file or the new one."""
    atomic_write_text(path, text)


def write_report(report: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Render and write report.html, report.md and report.json into ``out_dir``.

    Everything is rendered before the first file is written, so a rendering error leaves the
    folder as it was. Returns the written paths by format.
    """
    texts = {"html": render_html(report), "md": render_markdown(report), "json": render_json(report)}
    return write_report_files({REPORT_FILES[fmt]: text for fmt, text in texts.items()}, out_dir)


def write_report_files(texts: dict[str, str], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``{file name: text}`` into the folder ``out_dir``, each file atomically; the written
    paths by format (the file name's extension)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NlpkitError(f"--out {out} is a file, not a folder; pass a folder for the report files.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = {}
        for filename, text in texts.items():
            _write_atomic(out / filename, text)
            paths[Path(filename).suffix.lstrip(".")] = out / filename
    except OSError as exc:
        raise NlpkitError(f"cannot write the report into {out}: {exc.strerror}; pass a writable --out folder.") from None
    return paths

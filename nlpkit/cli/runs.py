"""`nlpkit runs`: list the complete runs in the runs folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nlpkit.cli._common import cli_errors, err, out
from nlpkit.errors import NlpkitError


def runs_cmd(
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder. Default: $NLPKIT_RUNS_DIR or ./runs.")] = None,
    kind: Annotated[Optional[str], typer.Option("--kind", help="Only runs of this kind: baseline, finetune or pretrain.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List complete runs (interrupted ones are never shown), oldest first."""
    with cli_errors():
        from nlpkit.errors import ConfigError
        from nlpkit.runs import RUN_KINDS, list_runs, runs_root, unfinished_runs

        if kind is not None and kind not in RUN_KINDS:
            raise ConfigError(f"unknown run kind {kind!r} for --kind; use one of: {', '.join(RUN_KINDS)}.")
        root = runs_root(runs_dir)
        if root.exists() and not root.is_dir():
            raise ConfigError(f"runs folder {root} is a file; pass --runs-dir with a folder.")
        rows = [summarise(run) for run in list_runs(root, kind=kind)]
        unfinished = unfinished_runs(root, abandoned=False)
        abandoned = unfinished_runs(root, abandoned=True)
    if unfinished:
        err().print(
            f"{len(unfinished)} unfinished run folder(s) (.tmp-*) in {root}: still running, or left by an "
            "interrupted run; delete them when no run is in progress.",
            highlight=False,
        )
    if abandoned:  # their process is gone: not running, and safe to remove
        err().print(
            f"{len(abandoned)} run folder(s) (.tmp-*) in {root} left by a process that is no longer running; "
            "the next run there removes them.",
            highlight=False,
        )
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        err().print(f"No complete runs in {root}{f' of kind {kind}' if kind else ''}.", highlight=False)
        return
    render(rows, root)


def summarise(run) -> dict[str, Any]:
    """One row per run: identity, data, and the headline test metric (None when not recorded)."""
    from nlpkit.metrics.evaluation import HEADLINE_METRICS

    data = run.info.get("data") or {}
    task = data.get("task")
    metric = HEADLINE_METRICS.get(task)  # the one number shown per run
    value = None
    if metric is not None and (run.path / "metrics.json").is_file():
        try:
            value = ((run.metrics().get("test") or {}).get("metrics") or {}).get(metric)
        except NlpkitError:  # a damaged metrics.json must not hide the other runs
            value = None
    split_dir = data.get("split_dir")
    return {
        "name": run.name,
        "path": str(run.path),
        "kind": run.kind,
        "role": run.role,
        "model": run.model,
        "created": run.created,
        "split": Path(split_dir).name if split_dir else None,
        "split_sha256": data.get("split_sha256"),
        "task": task,
        "metric": metric,
        "value": value,
    }


def render(rows: list[dict], root: Path) -> None:
    """A compact table: the name already carries start time and model; --json has everything."""
    from rich.table import Table

    table = Table(title=f"Runs in {root}", title_justify="left", box=None, padding=(0, 1),
                  pad_edge=False, header_style="bold")
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("split", overflow="ellipsis", no_wrap=True, max_width=10)
    table.add_column("test metric", no_wrap=True)
    for r in rows:
        split = r["split"] or "-"
        metric = f"{r['metric']} {r['value']:.4f}" if isinstance(r["value"], (int, float)) else "-"
        kind = f"{r['kind']} ({r['role']})" if r.get("role") else r["kind"]
        table.add_row(r["name"], kind, r["model"], split, metric)
    out().print(table)


def register(app: typer.Typer) -> None:
    app.command("runs")(runs_cmd)

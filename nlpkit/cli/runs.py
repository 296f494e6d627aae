"""`nlpkit runs`: list the complete runs in the runs folder, or remove some of them."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nlpkit.cli._common import cli_errors, err, out
from nlpkit.errors import NlpkitError


def runs_cmd(
    *,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder. Default: $NLPKIT_RUNS_DIR or ./runs.")] = None,
    kind: Annotated[Optional[str], typer.Option("--kind", help="Only runs of this kind: baseline, finetune or pretrain.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
    remove: Annotated[Optional[list[str]], typer.Option(
        "--remove", metavar="RUN", help="Remove this run (name, path or unique name prefix); repeat for several.")] = None,
    prune: Annotated[bool, typer.Option(
        "--prune", help="Remove every run that matches the filters (--role, --older-than, --split, --kind; at least one).")] = False,
    role: Annotated[Optional[str], typer.Option("--role", help="Only runs with this role, e.g. tune-trial.")] = None,
    older_than: Annotated[Optional[str], typer.Option(
        "--older-than", metavar="AGE", help="Only runs created longer ago than this, e.g. 30d, 2w, 12h.")] = None,
    split_dir: Annotated[Optional[Path], typer.Option(
        "--split", metavar="DIR", help="Only runs scored on this split folder (same fingerprint).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Remove without asking for confirmation.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what --remove/--prune would remove; remove nothing.")] = False,
) -> None:
    """List complete runs (interrupted ones are never shown), oldest first; or remove some (--remove, --prune)."""
    with cli_errors():
        from nlpkit.errors import ConfigError
        from nlpkit.runs import RUN_KINDS, interrupted_removals, list_runs, runs_root, unfinished_runs

        if kind is not None and kind not in RUN_KINDS:
            raise ConfigError(f"unknown run kind {kind!r} for --kind; use one of: {', '.join(RUN_KINDS)}.")
        root = runs_root(runs_dir)
        if root.exists() and not root.is_dir():
            raise ConfigError(f"runs folder {root} is a file; pass --runs-dir with a folder.")
        filters = {"role": role, "older_than": older_than, "split_dir": split_dir, "kind": kind}
        if remove or prune:
            remove_cmd(root, remove or [], prune=prune, filters=filters, yes=yes, dry_run=dry_run, as_json=as_json)
            return
        if yes or dry_run:
            raise ConfigError("--yes and --dry-run go with --remove RUN or --prune.")
        if any(filters[k] is not None for k in ("role", "older_than", "split_dir")):
            runs = select(root, filters)  # what `--prune` with the same filters would remove
        else:
            runs = list_runs(root, kind=kind)
        rows = [summarise(run) for run in runs]
        unfinished = unfinished_runs(root, abandoned=False)
        abandoned = unfinished_runs(root, abandoned=True)
        removing = interrupted_removals(root)
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
    if removing:
        err().print(
            f"{len(removing)} removed run folder(s) (.removing-*) in {root} not yet deleted (a removal was "
            "interrupted); the next `nlpkit runs --remove` or `--prune` there deletes them.",
            highlight=False,
        )
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        if any(filters[k] is not None for k in ("role", "older_than", "split_dir")):
            err().print(f"No runs in {root} match {describe(filters)}.", highlight=False)
        else:
            err().print(f"No complete runs in {root}{f' of kind {kind}' if kind else ''}.", highlight=False)
        return
    render(rows, root)


FILTER_FLAGS = {"role": "--role", "older_than": "--older-than", "split_dir": "--split", "kind": "--kind"}
FILTER_OPTIONS = "--role ROLE, --older-than AGE (e.g. 30d), --split DIR or --kind KIND"


def describe(filters: dict) -> str:
    """The filters given, as typed: ``--role tune-trial --older-than 30d``."""
    return " ".join(f"{FILTER_FLAGS[k]} {v}" for k, v in filters.items() if v is not None)


def select(root: Path, filters: dict) -> list:
    """The runs matching the command-line filters (``nlpkit.runs.select_runs``)."""
    from nlpkit.runs import parse_age, select_runs

    split_sha256 = None
    if filters["split_dir"] is not None:
        from nlpkit.data import load_split

        split_sha256 = load_split(filters["split_dir"]).fingerprint
    older = parse_age(filters["older_than"]) if filters["older_than"] is not None else None
    return select_runs(root, role=filters["role"], older_than_seconds=older, split_sha256=split_sha256,
                       kind=filters["kind"])


def stdin_is_interactive() -> bool:
    return sys.stdin.isatty()


def remove_cmd(root: Path, names: list[str], *, prune: bool, filters: dict, yes: bool, dry_run: bool,
               as_json: bool) -> None:
    """`--remove` / `--prune`: show the runs, confirm, then remove them (``nlpkit.runs.remove_runs``)."""
    from nlpkit.errors import ConfigError
    from nlpkit.runs import check_removable, find_run, remove_runs

    given = [FILTER_FLAGS[k] for k, v in filters.items() if v is not None]
    if names and prune:
        raise ConfigError("--remove and --prune do not combine; name runs with --remove, or select them with --prune.")
    if names and given:
        raise ConfigError(f"{', '.join(given)} select runs for --prune, not for --remove RUN; drop them or use --prune.")
    if prune and not given:
        raise ConfigError(f"--prune needs at least one filter: {FILTER_OPTIONS}; it never removes every run.")
    if prune:
        runs = select(root, filters)
    else:
        runs = [find_run(name, root) for name in names]
        for run in runs:
            check_removable(run, root)
        runs = list({run.path.absolute(): run for run in runs}.values())  # a run named twice is removed once
    if not runs:
        err().print(f"No runs in {root} match {describe(filters)}; nothing to remove.", highlight=False)
        if not dry_run:
            remove_runs([], root)  # still deletes what an interrupted removal left
        return
    rows = [summarise(run) for run in runs]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        verb = "Would remove" if dry_run else "To remove"
        render(rows, root, title=f"{verb}: {len(runs)} run(s) in {root}")
    if dry_run:
        err().print("Dry run: nothing removed.", highlight=False)
        return
    if not yes:
        if not stdin_is_interactive():
            raise ConfigError(f"cannot ask for confirmation (stdin is not a terminal); add --yes to remove these "
                              f"{len(runs)} run(s), or --dry-run to only list them.")
        if not typer.confirm(f"Remove {len(runs)} run(s)?", default=False, err=True):
            err().print("Nothing removed.", highlight=False)
            raise typer.Exit(1)
    removed = remove_runs(runs, root)
    err().print(f"Removed {len(removed)} run(s) from {root}.", highlight=False)


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
        # a pretraining run: what it read and where its token store is
        **({"corpus_documents": data.get("documents"), "corpus_tokens": data.get("tokens"),
            "corpus_bytes": data.get("corpus_bytes"), "store": (run.info.get("store") or {}).get("path"),
            "store_reused": (run.info.get("store") or {}).get("reused")} if run.kind == "pretrain" else {}),
    }


def render(rows: list[dict], root: Path, title: str | None = None) -> None:
    """A compact table: the name already carries start time and model; --json has everything."""
    from rich.table import Table

    table = Table(title=title or f"Runs in {root}", title_justify="left", box=None, padding=(0, 1),
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
        if r["kind"] == "pretrain" and r.get("corpus_tokens") is not None:  # what it read, in the metric's place
            size = f", {r['corpus_bytes'] / 1e6:,.1f} MB" if r.get("corpus_bytes") else ""
            store = {True: ", store reused", False: ", store built"}.get(r.get("store_reused"), "")
            metric = f"{r['corpus_documents']:,} docs, {r['corpus_tokens']:,} tokens{size}{store}"
        table.add_row(r["name"], kind, r["model"], split, metric)
    out().print(table)


def register(app: typer.Typer) -> None:
    app.command("runs")(runs_cmd)

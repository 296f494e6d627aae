"""`nlpkit report`: every run on a split against the baseline, with intervals, p-values and cost."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlpkit.cli._common import cli_errors, out, warn
from nlpkit.errors import ConfigError

OUTPUT_FORMATS = ("table", "md", "html", "json")


def report_cmd(
    split_dir: Annotated[Path, typer.Argument(help="Split folder whose test part the runs were scored on.")],
    *,
    metric: Annotated[str, typer.Option("--metric", help="Headline metric, e.g. micro_f1, macro_f1, accuracy.")] = "micro_f1",
    baseline: Annotated[
        str,
        typer.Option("--baseline", help="Run to compare against: a run name, path or model name, or "
                     "'best-baseline' (the baseline run, other than majority, with the best valid metric: "
                     "chosen on valid, never on test)."),
    ] = "best-baseline",
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder for report.html, report.md, report.json. Default: SPLIT_DIR/report.")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="What to print: table, md, html or json.")] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json (the same as --format json).")] = False,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Run registry. Default: $NLPKIT_RUNS_DIR, else ./runs.")
    ] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the 95% intervals.")] = 1000,
    n_perm: Annotated[int, typer.Option("--n-perm", help="Approximate-randomisation shuffles for p-values.")] = 10000,
    seed: Annotated[int, typer.Option("--seed", help="Seed for every resampling: same runs, same report.")] = 0,
    top_labels: Annotated[int, typer.Option("--top-labels", help="Labels per list in the per-label view.")] = 10,
    fold: Annotated[int | None, typer.Option("--fold", help="k-fold split: compare the runs on this fold (0..K-1).",
                                                show_default=False)] = None,
    examples: Annotated[bool, typer.Option("--examples/--no-examples",
                                           help="Show example documents in the error analysis; --no-examples "
                                                "keeps every document text out of the report files.")] = True,
    measure_cost: Annotated[bool, typer.Option("--measure-cost", help="Re-measure every model's prediction speed on this machine (its saved model on the test texts), so that every docs/s and cost ratio comes from one machine.")] = False,
    price_per_hour: Annotated[Optional[str], typer.Option("--price-per-hour", help="Hourly prices, e.g. CPU=0.10,GPU=2.50: each row's training cost and the cost of predicting a million documents.", show_default=False)] = None,
) -> None:
    """Compare every run on SPLIT_DIR with the baseline: intervals, p-values, per-label F1 and cost.

    Writes report.html, report.md and report.json into --out; --format chooses what is printed.
    """
    with cli_errors():
        if format not in OUTPUT_FORMATS:
            raise ConfigError(f"unknown --format {format!r}; use one of: {', '.join(OUTPUT_FORMATS)}.")
        if as_json:
            if format not in ("table", "json"):
                raise ConfigError(f"--json prints JSON but --format asks for {format}; give one of them.")
            format = "json"
        if top_labels < 1:
            raise ConfigError(f"--top-labels must be at least 1, got {top_labels}.")
        from nlpkit.data import load_split
        from nlpkit.report import build_report, write_report

        split = load_split(split_dir)
        if fold is None and split.folds and split.test is None:  # cross-validation: every fold
            _cross_validation(split, metric=metric, baseline=baseline, runs_dir=runs_dir,
                              out_dir=out_dir if out_dir is not None else split_dir / "report-cv", format=format)
            return
        from nlpkit.report.cost import parse_prices

        prices = parse_prices(price_per_hour)
        report = build_report(split, metric=metric, baseline=baseline, runs_root=runs_dir, n_boot=n_boot,
                              n_perm=n_perm, seed=seed, top_labels=top_labels, fold=fold, examples=examples,
                              measure_cost=measure_cost, prices=prices)
        default_out = split_dir / ("report" if fold is None else f"report-fold{fold}")
        paths = write_report(report, out_dir if out_dir is not None else default_out)
    for item in report["excluded"]:
        warn(f"not compared: {item['name']} ({item['reason']})")
    from nlpkit.report.leakage import leakage_line

    line = leakage_line(report)  # test documents with near-duplicates in train or valid
    if line:
        warn(line)
    sys.stderr.flush()
    if format == "table":
        _print_table(report, paths["html"])
    else:
        typer.echo(paths[format].read_text(encoding="utf-8"), nl=False)


def _cross_validation(split, *, metric: str, baseline: str, runs_dir, out_dir: Path, format: str) -> None:
    from nlpkit.report.cv import build_cv_report, cv_table, write_cv_report

    report = build_cv_report(split, metric=metric, baseline=baseline, runs_root=runs_dir)
    paths = write_cv_report(report, out_dir)
    for item in report["incomplete"]:
        warn(f"not compared: {item['model']} has runs on folds {', '.join(map(str, item['folds']))} only")
    sys.stderr.flush()
    if format != "table":
        typer.echo(paths[format].read_text(encoding="utf-8"), nl=False)
        return
    console = out()
    console.print(cv_table(report))
    for line in report["verdicts"] or ["Only one model: nothing to compare yet."]:
        console.print(f"• {line}", markup=False, highlight=False)
    console.print(f"Report: {paths['html']}", markup=False, highlight=False)


def _print_table(report: dict, html_path: Path) -> None:
    from nlpkit.report import leaderboard_table
    from nlpkit.report.render_text import cost_note, seeds_lines

    console = out()
    if report.get("headline"):
        console.print(report["headline"]["sentence"], markup=False, highlight=False, style="bold")
    console.print(leaderboard_table(report))
    console.print(f"Cost: {cost_note(report)}", markup=False, highlight=False, style="dim")
    for line in seeds_lines(report):
        console.print(line, markup=False, highlight=False, style="dim")
    curves = report.get("curves")
    if curves:
        console.print(f"Learning curves ({len(curves['models'])} models): "
                      + ("; ".join(curves["crossings"]) or "they do not cross within the shares measured")
                      + " (the report files draw them).", markup=False, highlight=False)
    for line in report["verdicts"] or ["Only one run: nothing to compare yet."]:
        console.print(f"• {line}", markup=False, highlight=False)
    console.print(f"Report: {html_path}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)

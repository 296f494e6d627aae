"""`nlpkit curve`: learning curves of baselines (and a fine-tuned checkpoint) on one split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlpkit.cli._common import cli_errors, err, out


def curve_cmd(
    split_dir: Annotated[Path, typer.Argument(help="Split folder made by `nlpkit split` (train, valid, test).", show_default=False)],
    *,
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="A baseline model to draw (repeat for several), with defaults: majority, tfidf-lr, fasttext, word2vec.", show_default=False)] = None,
    finetune_model: Annotated[Optional[Path], typer.Option("--finetune-model", help="Also fine-tune this checkpoint folder at every point (with `nlpkit finetune`'s defaults and the options below).", show_default=False)] = None,
    fractions: Annotated[str, typer.Option("--fractions", help="Shares of the train part to train on, comma-separated, in (0, 1]; nested and stratified.")] = "0.1,0.25,0.5,1",
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Seeds, e.g. 1,2,3: each point once per seed (the subsample and the model's own seed).", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="One seed (default 0).", show_default=False)] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", help="A baseline parameter, MODEL.KEY=VALUE, as `nlpkit baseline --set`.", show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="With --finetune-model: its --epochs.", show_default=False)] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", min=4, help="With --finetune-model: its --max-length.", show_default=False)] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", min=1, help="Baseline points trained side by side in this many worker processes (default: one per CPU; 1 = one after another). The points are the same either way.", show_default=False)] = None,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder (default $NLPKIT_RUNS_DIR or ./runs).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the points as JSON.")] = False,
) -> None:
    """Train each model on growing shares of the train part and score it on test: would more labelled
    data change the answer? Every point is a recorded run (role curve-point) that `nlpkit report`
    draws as curves and keeps out of its leaderboard. Valid stays whole and is used as each model
    always uses it.
    """
    with cli_errors():
        from nlpkit.curve import learning_curve, parse_fractions
        from nlpkit.errors import ConfigError
        from nlpkit.seeds import seeds_option

        chosen = parse_fractions(fractions)
        all_seeds = seeds_option(seed, seeds)
        if finetune_model is None and (epochs is not None or max_length is not None):
            raise ConfigError("--epochs and --max-length apply to --finetune-model; add it or drop them.")
        options = {k: v for k, v in {"epochs": epochs, "max_length": max_length}.items() if v is not None}
        runs = learning_curve(split_dir, baselines=list(model or []), finetune_model=finetune_model,
                              fractions=chosen, seeds=all_seeds, runs_dir=runs_dir, finetune_options=options,
                              settings=settings, jobs=jobs, say=lambda msg: err().print(msg, highlight=False))
    rows = []
    for run in runs:
        metrics = run.metrics()["test"]["metrics"]
        headline = "accuracy" if "accuracy" in metrics else "micro_f1"
        rows.append({"model": run.model, "fraction": run.info["curve"]["fraction"],
                     "n_train": run.info["curve"]["n_train"], "seed": run.info["curve"]["seed"],
                     "metric": headline, "test": metrics.get(headline), "run": run.name})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="Learning curve points (test part; `nlpkit report` draws them with intervals)", title_justify="left")
    for col in ("model", "fraction", "train docs", "seed", rows[0]["metric"] if rows else "metric", "run"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["model"], f"{r['fraction']:g}", f"{r['n_train']:,}", str(r["seed"]),
                      "-" if r["test"] is None else f"{r['test']:.4f}", r["run"])
    out().print(table)


def register(app: typer.Typer) -> None:
    app.command("curve")(curve_cmd)

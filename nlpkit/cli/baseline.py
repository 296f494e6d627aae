"""`nlpkit baseline`: train the baseline models on a split folder, one recorded run each, and compare
them in one table (on a k-fold split, their mean and spread over the folds).

A thin layer over :func:`nlpkit.baseline.baseline_config` and :func:`nlpkit.baseline.run_baselines`:
it parses the options, shows progress and warnings on stderr and the results on stdout.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nlpkit.cli._common import cli_errors, err, is_tty, out, warn
from nlpkit.errors import NlpkitError

from nlpkit.baseline import (baseline_config, baseline_models, choices, cross_validation_summary, run_baselines,
                             split_notes, summarize)

# the --model help names the baseline families when it is shown (see register): finding them
# imports every registered family's module, which `nlpkit --help` should not pay for
MODEL_HELP = "Model to train; repeat for several. Default: all of {models}."


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def _size(n: int | None) -> str:
    """Decimal units, as in ``nlpkit finetune`` and ``nlpkit report`` (1 kB = 1,000 bytes)."""
    from nlpkit.report.render_text import fmt_bytes

    return "-" if n is None else fmt_bytes(n)


def results_table(rows: list[dict[str, Any]]):
    from rich.table import Table

    single = bool(rows) and rows[0]["task"] == "single"
    table = Table(title="Baselines (test part; decisions made on train + valid, never on test)")
    table.add_column("model")
    table.add_column("accuracy" if single else "micro-F1", justify="right")
    table.add_column("macro-F1", justify="right")
    table.add_column("fit s", justify="right")
    table.add_column("docs/s", justify="right")
    table.add_column("size", justify="right")
    table.add_column("run", overflow="fold")
    several_seeds = len({r.get("seed") for r in rows}) > 1
    for r in rows:
        name = f"{r['model']} (seed {r['seed']})" if several_seeds else r["model"]
        table.add_row(name, _fmt(r["accuracy"] if single else r["micro_f1"]), _fmt(r["macro_f1"]),
                      _fmt(r["fit_seconds"], 1), _fmt(r["predict_docs_per_s"], 0), _size(r["model_size_bytes"]),
                      Path(r["run"]).name)
    return table


def cross_validation_table(summary: list[dict[str, Any]], n_folds: int):
    from rich.table import Table

    single = bool(summary) and summary[0]["task"] == "single"
    table = Table(title=f"Baselines, {n_folds}-fold cross-validation (mean ± standard deviation over the folds)")
    table.add_column("model")
    table.add_column("accuracy" if single else "micro-F1", justify="right")
    table.add_column("macro-F1", justify="right")
    table.add_column("per fold", justify="right")
    table.add_column("fit s", justify="right")

    def pm(mean, sd) -> str:
        return _fmt(mean) + ("" if sd is None else f" ± {sd:.4f}")

    for r in summary:
        table.add_row(r["model"], pm(r["mean"], r["sd"]), pm(r["macro_f1_mean"], r["macro_f1_sd"]),
                      " ".join(_fmt(v, 3) for v in r["per_fold"]), _fmt(r["fit_seconds_mean"], 1))
    return table


def baseline_cmd(
    split_dir: Annotated[Path, typer.Argument(help="Split folder made by `nlpkit split`.", show_default=False)],
    *,
    model: Annotated[
        Optional[list[str]],
        typer.Option("--model", "-m", help=MODEL_HELP.format(models="the baseline models"), show_default=False),
    ] = None,
    tune: Annotated[bool, typer.Option("--tune", help="Tune tfidf-lr (C, n-grams; by its cross-fit over train + valid) and fastText (autotune on valid, kept when better than the defaults there).")] = False,
    cv: Annotated[Optional[int], typer.Option("--cv", help="With --tune: tfidf-lr's folds (K-fold cross-fit over train + valid; default 3).",
                                              show_default=False)] = None,
    tune_seconds: Annotated[Optional[float], typer.Option("--tune-seconds", help="With --tune: fastText autotune's search budget in seconds (default: twice the default training's time; autotune's model is kept only when better on valid).",
                                                           show_default=False)] = None,
    vectors: Annotated[Optional[Path], typer.Option("--vectors", help="Pre-trained word vectors for word2vec "
                                                    "(word2vec text/binary or GloVe text).", show_default=False)] = None,
    rule: Annotated[str, typer.Option("--rule", help="Decision rule tuned on valid, for multi-label data: auto (= choose: one "
                                      "tuned global threshold, unless per-label thresholds or top-k score clearly better held out "
                                      "within the tuning documents), global, per-label (global fallback), fixed (0.5), or topK, the K best "
                                      "labels (e.g. top1; K below the number of labels). Single-label data: argmax (= auto).")] = "auto",
    settings: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="A model parameter, MODEL.KEY=VALUE; repeat for several (e.g. --set tfidf-lr.C=30 "
                     "--set tfidf-lr.char_ngrams=2,5 --set fasttext.dim=100). Recorded in each run.", show_default=False),
    ] = None,
    fold: Annotated[Optional[int], typer.Option("--fold", help="k-fold split: run on this fold only (0..K-1); by "
                                                "default every fold, one run per model and fold.", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of every random choice (default 0).", show_default=False)] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Several seeds, e.g. 1,2,3: one run per model and seed; "
                                                 "`nlpkit report` shows their mean and counts the seeds in its intervals.",
                                                 show_default=False)] = None,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder (default $NLPKIT_RUNS_DIR or ./runs).",
                                                     show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list instead of the table.")] = False,
) -> None:
    """Train baseline models on a split: fit on train, decision rule tuned on valid, scored on test.

    One run is recorded per model (see `nlpkit runs`, `nlpkit report`). Without a valid part, one is
    carved from train. tfidf-lr is cross-fitted: 3 stratified folds over train + valid give every
    document an out-of-fold score, on which it chooses between word 1-2-grams and unigrams and
    (multi-label) tunes the rule; the model is then refitted on train + valid (up to 50,000
    documents; above, it is fitted on train and decided on valid like the others). fastText trains
    bigrams and, side by side, unigrams without the words in over 10 % of training documents, and
    keeps the latter only when clearly better on valid. Each choice is printed under the table.
    fastText and word2vec train with one thread, so results are reproducible.

    On a k-fold split (`nlpkit split --folds K`) each fold in turn is the test part and the others
    train (with a held-out test part: fold k is valid, the test part stays the test); the table
    then gives each model's mean and standard deviation over the folds.
    """
    recorded: list = []  # runs complete so far: kept when a later model fails, and said so

    with cli_errors():
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from nlpkit.seeds import seeds_option

        all_seeds = seeds_option(seed, seeds)
        configs = [baseline_config(model or [], tune=tune, cv=cv, tune_seconds=tune_seconds, vectors=vectors, seed=s,
                                   rule=rule, settings=settings) for s in all_seeds]
        from nlpkit.data import load_split

        split = load_split(split_dir)
        shown: set[str] = set()
        said: dict[str, Any] = {}  # the split's own warnings, said once with the first run's

        def on_run(run) -> None:
            recorded.append(run)
            report_warnings(run)

        def report_warnings(run) -> None:
            if not said:
                # said with the first run's warnings (where the runs' own note on unseen labels came)
                said["notes"], missing = split_notes(split)
                said["unseen"] = set(missing.get("test", {}))  # test labels those notes name
                for note in said["notes"]:
                    warn(note)
            found = list(run.info.get("warnings") or []) + list((run.info.get("fit_info") or {}).get("warnings") or [])
            unseen = run.info.get("labels_unseen_in_train") or []
            if unseen and set(unseen) <= said["unseen"]:  # the run's own note on them: said above
                found = [w for w in found if "occur in test but never in train" not in w]
            for w in found:
                if w not in shown:
                    shown.add(w)
                    warn(f"{run.model}: {w}" if w not in (run.info.get("warnings") or []) else w)

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=err(), transient=True, disable=not is_tty()) as progress:
            try:
                runs = [run for config in configs
                        for run in run_baselines(split, config, fold=fold, runs_root=runs_dir, progress=progress,
                                                 on_run=on_run)]
            except (NlpkitError, KeyboardInterrupt):
                if recorded:  # the line above the error: what is already on record stays there
                    err().print(f"Kept the {len(recorded)} run(s) completed before this: "
                                f"{', '.join(run.name for run in recorded)} (in {Path(recorded[0].path).parent}).",
                                highlight=False)
                raise
        rows = [summarize(r) for r in runs]
        if as_json:
            typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
            return
        n_folds = len({r["fold"] for r in rows})  # every fold of a k-fold split, or one split
        if n_folds > 1:
            out().print(cross_validation_table(cross_validation_summary(rows), n_folds))
            # per model, how often each choice was made over the folds (scores differ by fold)
            made = Counter((r["model"], choice) for r in rows for choice, _evidence in choices(r))
            for (name, choice), n in made.items():
                out().print(f"{name} chose {choice} on {n} of {n_folds} folds", highlight=False)
        else:
            out().print(results_table(rows))
            for r in rows:
                for choice, evidence in choices(r):
                    out().print(f"{r['model']} chose {choice} ({evidence})", highlight=False)
        if rows:
            out().print(f"Runs in {Path(rows[0]['run']).parent}", highlight=False)


def register(app: typer.Typer) -> None:
    from nlpkit.cli import Command

    class BaselineCommand(Command):
        def get_params(self, ctx):
            params = super().get_params(ctx)
            try:
                models = ", ".join(baseline_models())
            except NlpkitError:  # a family that cannot be imported: the error comes when it runs
                return params
            for param in params:
                if param.name == "model":
                    param.help = MODEL_HELP.format(models=models)
            return params

    app.command("baseline", cls=BaselineCommand)(baseline_cmd)

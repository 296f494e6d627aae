"""`nlpkit baseline`: train the classic baselines (majority, TF-IDF + LR, fastText, word2vec) on a
split folder, one recorded run each, and compare them in one table.

Every model goes through :func:`nlpkit.experiment.run_experiment`: fit on train, decision rule
tuned on valid (never on test), test scored, run recorded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from nlpkit.cli._common import cli_errors, err, is_tty, out, warn
from nlpkit.errors import ConfigError

BASELINE_MODELS = ("majority", "tfidf-lr", "fasttext", "word2vec")
TUNABLE = ("tfidf-lr", "fasttext")


def baseline_config(models: list[str], *, tune: bool = False, cv: int | None = None, tune_seconds: float | None = None,
                    vectors: Path | None = None, seed: int = 0, rule: str = "auto") -> dict[str, Any]:
    """Validate the options and resolve them into one config (checked before any work starts).

    Returns ``{"models": [...], "params": {model: params}, "tune", "cv", "tune_seconds", "vectors",
    "seed", "rule"}``.
    """
    import re

    from nlpkit.metrics.rules import MULTI_STRATEGIES, SINGLE_STRATEGIES

    if rule not in MULTI_STRATEGIES and rule not in SINGLE_STRATEGIES and not re.fullmatch(r"top-?\d+", rule):
        raise ConfigError(f"unknown --rule {rule!r}; choose one of: {', '.join(dict.fromkeys([*MULTI_STRATEGIES, *SINGLE_STRATEGIES]))}, topK (e.g. top1).")
    models = list(dict.fromkeys(models or BASELINE_MODELS))
    unknown = [m for m in models if m not in BASELINE_MODELS]
    if unknown:
        hint = " (fine-tune transformers with `nlpkit finetune`)" if "transformer" in unknown else ""
        raise ConfigError(f"unknown baseline model {', '.join(unknown)}{hint}; choose from {', '.join(BASELINE_MODELS)}.")
    if cv is not None and not tune:
        raise ConfigError("--cv only applies to --tune (tuning by k-fold cross-validation); add --tune or drop --cv.")
    if cv is not None and cv < 2:
        raise ConfigError(f"--cv must be at least 2 folds; got {cv}.")
    if tune_seconds is not None and not tune:
        raise ConfigError("--tune-seconds only applies to --tune (fastText autotune budget); add --tune or drop it.")
    if tune_seconds is not None and tune_seconds <= 0:
        raise ConfigError(f"--tune-seconds must be > 0; got {tune_seconds}.")
    if vectors is not None:
        if "word2vec" not in models:
            raise ConfigError("--vectors is only used by the word2vec model; add --model word2vec or drop --vectors.")
        from nlpkit.models.word2vec import sniff_vectors_format

        sniff_vectors_format(vectors)  # unreadable / pickled / unknown format: fail before any training
    if tune and not any(m in TUNABLE for m in models):
        raise ConfigError(f"--tune applies to {' and '.join(TUNABLE)}; none of them is selected.")
    params: dict[str, dict[str, Any]] = {}
    for name in models:
        if name == "majority":
            params[name] = {}
        elif name == "tfidf-lr":
            params[name] = {"seed": seed, "tune": tune, "cv": cv or 0}
        elif name == "fasttext":
            params[name] = {"seed": seed, "tune": tune}
            if tune_seconds is not None:
                params[name]["tune_seconds"] = int(round(tune_seconds))
        elif name == "word2vec":
            params[name] = {"seed": seed, "vectors": str(vectors) if vectors is not None else None}
    return {"models": models, "params": params, "tune": tune, "cv": cv, "tune_seconds": tune_seconds,
            "vectors": str(vectors) if vectors is not None else None, "seed": seed, "rule": rule}


def run_baselines(split, config: dict[str, Any], *, runs_root: Path | None = None,
                  progress=None, on_run: Callable[[Any], None] | None = None) -> list:
    """Train every model of ``config`` (from :func:`baseline_config`) on ``split``; one run each.

    ``split`` is a :class:`nlpkit.data.Split` or the path of a split folder.

    ``progress`` is an optional ``rich.progress.Progress``: one task follows the stages of each
    experiment, models add their own bars. ``on_run(run)`` is called as each run completes.
    """
    from nlpkit.data import load_split
    from nlpkit.experiment import run_experiment
    from nlpkit.models import get_model_class

    from nlpkit.metrics.rules import SINGLE_STRATEGIES

    if not hasattr(split, "parts"):
        split = load_split(split)
    rule = config.get("rule", "auto")
    if split.task == "single" and rule not in SINGLE_STRATEGIES:
        raise ConfigError(f"--rule {rule} is for multi-label data; {split.path} is single-label (argmax): drop --rule.")
    runs = []
    stage_task = progress.add_task("baseline", total=len(config["models"])) if progress is not None else None
    for name in config["models"]:
        model = get_model_class(name)(**config["params"][name])

        def stage(what: str, name: str = name) -> None:
            if progress is not None:
                progress.update(stage_task, description=f"{name}: {what}")

        run_config = {"command": "baseline", "model": name, "params": model.get_params(),
                      **{k: v for k, v in config.items() if k not in ("params", "models")}}
        run = run_experiment(model, split, kind="baseline", config=run_config, seed=config["seed"],
                             runs_root=runs_root, rule_strategy=rule, progress=stage, fit_progress=progress)
        runs.append(run)
        if progress is not None:
            progress.advance(stage_task)
        if on_run is not None:
            on_run(run)
    return runs


def summarize(run) -> dict[str, Any]:
    """One row of the results table / JSON for a run."""
    metrics = run.metrics()["test"]
    m = metrics["metrics"]
    timings = run.info.get("timings") or {}
    task = metrics.get("task")
    return {
        "model": run.model,
        "task": task,
        "micro_f1": m.get("micro_f1"),
        "macro_f1": m.get("macro_f1"),
        "accuracy": m.get("accuracy"),
        "fit_seconds": timings.get("fit_seconds"),
        "predict_docs_per_s": timings.get("predict_docs_per_s"),
        "model_size_bytes": run.info.get("model_size_bytes"),
        "fit_info": run.info.get("fit_info") or {},
        "run": str(run.path),
    }


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def results_table(rows: list[dict[str, Any]]):
    from rich.table import Table

    single = bool(rows) and rows[0]["task"] == "single"
    table = Table(title="Baselines (test part; decision rule tuned on valid)")
    table.add_column("model")
    table.add_column("accuracy" if single else "micro-F1", justify="right")
    table.add_column("macro-F1", justify="right")
    table.add_column("fit s", justify="right")
    table.add_column("docs/s", justify="right")
    table.add_column("size", justify="right")
    table.add_column("run", overflow="fold")
    for r in rows:
        table.add_row(r["model"], _fmt(r["accuracy"] if single else r["micro_f1"]), _fmt(r["macro_f1"]),
                      _fmt(r["fit_seconds"], 1), _fmt(r["predict_docs_per_s"], 0), _size(r["model_size_bytes"]),
                      r["run"])
    return table


def baseline_cmd(
    split_dir: Annotated[Path, typer.Argument(help="Split folder made by `nlpkit split`.", show_default=False)],
    model: Annotated[
        Optional[list[str]],
        typer.Option("--model", "-m", help=f"Model to train; repeat for several. Default: all of {', '.join(BASELINE_MODELS)}.",
                     show_default=False),
    ] = None,
    tune: Annotated[bool, typer.Option("--tune", help="Tune tfidf-lr (C, n-grams) and fastText (autotune) on valid.")] = False,
    cv: Annotated[Optional[int], typer.Option("--cv", help="With --tune: choose tfidf-lr's options by K-fold CV on train.",
                                              show_default=False)] = None,
    tune_seconds: Annotated[Optional[float], typer.Option("--tune-seconds", help="With --tune: fastText autotune budget (default 45).",
                                                           show_default=False)] = None,
    vectors: Annotated[Optional[Path], typer.Option("--vectors", help="Pre-trained word vectors for word2vec "
                                                    "(word2vec text/binary or GloVe text).", show_default=False)] = None,
    rule: Annotated[str, typer.Option("--rule", help="Decision rule tuned on valid (multi-label): auto (= global: one "
                                      "tuned threshold), per-label (global fallback), fixed (0.5), topK.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.")] = 0,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder (default $NLPKIT_RUNS_DIR or ./runs).",
                                                     show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list instead of the table.")] = False,
) -> None:
    """Train baseline models on a split: fit on train, decision rule tuned on valid, scored on test.

    One run is recorded per model (see `nlpkit runs`, `nlpkit report`). Without a valid part, one is
    carved from train. fastText and word2vec train with one thread, so results are reproducible.
    """
    with cli_errors():
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        config = baseline_config(model or [], tune=tune, cv=cv, tune_seconds=tune_seconds, vectors=vectors, seed=seed,
                                 rule=rule)
        from nlpkit.data import load_split

        split = load_split(split_dir)
        shown: set[str] = set()

        def report_warnings(run) -> None:
            found = list(run.info.get("warnings") or []) + list((run.info.get("fit_info") or {}).get("warnings") or [])
            for w in found:
                if w not in shown:
                    shown.add(w)
                    warn(f"{run.model}: {w}" if w not in (run.info.get("warnings") or []) else w)

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=err(), transient=True, disable=not is_tty()) as progress:
            runs = run_baselines(split, config, runs_root=runs_dir, progress=progress, on_run=report_warnings)
        rows = [summarize(r) for r in runs]
        if as_json:
            typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        else:
            out().print(results_table(rows))


def register(app: typer.Typer) -> None:
    app.command("baseline")(baseline_cmd)

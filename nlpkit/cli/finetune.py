"""`nlpkit finetune`: fine-tune a local checkpoint for classification and record a scored run."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlpkit.cli._common import cli_errors, err, is_tty, out, warn


DEFAULT_MAX_LENGTH = 256  # tokens; lowered to the checkpoint's positions (e.g. 128 for `nlpkit pretrain`'s default)


def finetune_cmd(
    split_dir: Annotated[Path, typer.Argument(help="Split folder written by `nlpkit split` (train, optional valid, test).")],
    *,
    model: Annotated[Path, typer.Option("--model", help="Local checkpoint folder: `nlpkit pretrain` output or any Hugging Face model folder (BERT, RoBERTa, DistilBERT, MiniLM, ModernBERT).")],
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the training set at most (early stopping on valid ends sooner).")] = 6,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate of the encoder (AdamW).")] = 1e-4,
    head_lr: Annotated[Optional[float], typer.Option("--head-lr", help="Peak learning rate of a new classification head (it starts from nothing); a head kept from the checkpoint learns at --lr.")] = 3e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Documents per training step.")] = 16,
    max_length: Annotated[Optional[int], typer.Option("--max-length", min=4, help="Tokens per sequence, special tokens included. Default: 256, or the model's positions if fewer.")] = None,
    long_text: Annotated[str, typer.Option("--long-text", help="Documents longer than --max-length: truncate, head-tail (first quarter + last three quarters) or chunks (overlapping windows, logits pooled).")] = "truncate",
    chunk_stride: Annotated[Optional[int], typer.Option("--chunk-stride", help="With --long-text chunks: tokens shared by consecutive chunks. Default: a quarter of the window.")] = None,
    max_chunks: Annotated[int, typer.Option("--max-chunks", min=1, help="With --long-text chunks: at most this many chunks per document (the first ones).")] = 8,
    pool: Annotated[str, typer.Option("--pool", help="With --long-text chunks: pool chunk logits by mean or max.")] = "mean",
    pos_weight: Annotated[bool, typer.Option("--pos-weight", help="Multi-label: weight positives of rare labels in the BCE loss (negatives/positives, at most 30).")] = False,
    label_smoothing: Annotated[float, typer.Option("--label-smoothing", help="Share of each training target spread evenly over the classes (each label's two outcomes for multi-label); 0 = off.")] = 0.0,
    layer_decay: Annotated[float, typer.Option("--layer-decay", help="Layer-wise lr decay factor in (0, 1]; 1 = off.")] = 1.0,
    warmup: Annotated[float, typer.Option("--warmup", help="Warm-up fraction of the training steps, then linear decay.")] = 0.1,
    patience: Annotated[int, typer.Option("--patience", min=0, help="Stop after this many evaluations without a better validation metric; 0 = never.")] = 2,
    evals_per_epoch: Annotated[int, typer.Option("--evals-per-epoch", min=1, help="Validation evaluations per epoch.")] = 1,
    time_budget: Annotated[Optional[str], typer.Option("--time-budget", help="Stop training after this long, e.g. 90s, 30m, 1h30m or 600 (seconds); the step under way, the last evaluation and the test scoring come on top. The best checkpoint is kept.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for torch. Default: torch's choice.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto (bf16 autocast where the GPU/CPU does bf16 natively), fp32 or bf16.")] = "auto",
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for the head's initial weights, dropout, batch order and valid carving (default 0).", show_default=False)] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Several seeds, e.g. 1,2,3: one run per seed (with --tune: the search runs once, with the first seed, and the other seeds train with the settings it chose); `nlpkit report` shows their mean and counts the seeds in its intervals.", show_default=False)] = None,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder. Default: $NLPKIT_RUNS_DIR or ./runs.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="A label for this run, stored in run.json.")] = None,
    fold: Annotated[Optional[int], typer.Option("--fold", help="k-fold split: the fold to run on (0..K-1).")] = None,
    tune: Annotated[bool, typer.Option("--tune", help="Search the learning rates and batch size: the options as given first (the reference), then --lr 5e-5, 1e-4, 2e-4 x the head at the same rate or at 3e-3 x --batch-size 16, 32, each trial pruned once its best valid falls below the reference's running mean at the same epoch (from a third of the epochs on); each trial is recorded (role tune-trial, left out of reports) and the best on valid is kept (role tuned).")] = False,
    tune_budget: Annotated[Optional[str], typer.Option("--tune-budget", help="With --tune: wall-clock budget of the whole search, e.g. 30m or 2h: the reference trains for at most half of it, each other trial on what is left (trials that would get under 30 s of training are skipped). Default: every trial runs to its end or its pruning.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted fine-tuning: the same command plus --resume goes on from its last saved training state (kept at every evaluation and every 10 minutes) and gives the result of an uninterrupted run.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Fine-tune MODEL on SPLIT_DIR, tune the decision rule on valid, score test, record a run.

    Without a valid part in the split, 10 % of train is carved off (stratified, seeded) for early
    stopping and threshold tuning; the run's config records it.
    """
    with cli_errors(on_interrupt=lambda: _resume_hint(runs_dir)):
        from nlpkit.errors import ConfigError
        from nlpkit.pretrain.config import parse_duration

        time_budget = parse_duration(time_budget)
        if tune_budget is not None and not tune:
            raise ConfigError("--tune-budget only applies with --tune; add --tune or drop it.")
        tune_seconds = parse_duration(tune_budget)
        if max_length is None:
            from nlpkit.hf.checkpoint import position_limit

            max_length = min(DEFAULT_MAX_LENGTH, position_limit(model) or DEFAULT_MAX_LENGTH)
        options = dict(epochs=epochs, lr=lr, head_lr=head_lr, batch_size=batch_size, max_length=max_length,
                       long_text=long_text, chunk_stride=chunk_stride, max_chunks=max_chunks, pool=pool,
                       pos_weight=pos_weight, label_smoothing=label_smoothing, layer_decay=layer_decay, warmup=warmup, patience=patience,
                       evals_per_epoch=evals_per_epoch, time_budget=time_budget, threads=threads, device=device,
                       precision=precision)
        from nlpkit.seeds import seeds_option

        all_seeds = seeds_option(seed, seeds)
        if resume and len(all_seeds) > 1:
            raise ConfigError("--resume continues one interrupted run: give its --seed, not several --seeds.")
        runs = []
        for k, one_seed in enumerate(all_seeds):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if tune and k > 0:  # the search ran once, with the first seed: its choice, every other seed
                    from nlpkit.finetune import TUNED_ROLE, tuned_options

                    run = _run(split_dir, model, {**options, **tuned_options(runs[0])}, seed=one_seed,
                               runs_dir=runs_dir, name=name, fold=fold, role=TUNED_ROLE)
                else:
                    run = _run(split_dir, model, options, seed=one_seed, runs_dir=runs_dir, name=name, fold=fold,
                               resume=resume, tune=tune, tune_seconds=tune_seconds)
            if run is None:  # a non-zero rank of a distributed launch: rank 0 reports
                return
            # run_experiment records nlpkit's warnings in run.json; print those, plus any it did not keep
            recorded = list(run.info.get("warnings", []))
            for message in recorded + [str(w.message) for w in caught if _is_ours(w) and str(w.message) not in recorded]:
                warn(message)
            runs.append(run)
    if len(runs) == 1:
        _print_summary(runs[0], as_json)
    else:
        _print_seeds(runs, as_json)


def _resume_hint(runs_dir: Optional[Path]) -> str:
    from nlpkit.finetune import RESUME_FOLDER
    from nlpkit.runs import runs_root

    return (f"The training state is saved at every evaluation and every 10 minutes under "
            f"{runs_root(runs_dir) / RESUME_FOLDER}: run the same command with --resume to continue.")


def _is_ours(w: warnings.WarningMessage) -> bool:
    from nlpkit.models.transformer import FinetuneWarning

    return issubclass(w.category, FinetuneWarning)


def _run(split_dir, model, options, *, seed, runs_dir, name, fold=None, resume=False, tune=False, tune_seconds=None,
         role=None):
    from nlpkit.finetune import finetune, finetune_tuned
    from nlpkit.training.distributed import dist_context

    if tune:  # trial by trial, each announced on stderr
        say = (lambda msg: err().print(msg, highlight=False)) if dist_context().is_main else None
        return finetune_tuned(split_dir, model, budget_seconds=tune_seconds, seed=seed, runs_dir=runs_dir, name=name,
                              fold=fold, resume=resume, say=say, **options)
    if not is_tty() or not dist_context().is_main:
        return finetune(split_dir, model, seed=seed, runs_dir=runs_dir, name=name, fold=fold, resume=resume, role=role,
                        **options)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=err(), transient=True) as progress:
        return finetune(split_dir, model, seed=seed, runs_dir=runs_dir, name=name, fold=fold, progress=progress,
                        resume=resume, role=role, stage=lambda s: progress.console.log(f"[dim]{s}[/dim]"), **options)


def _print_summary(run, as_json: bool) -> None:
    metrics = run.metrics()["test"]["metrics"]
    info = run.info
    fit = info.get("fit_info", {})
    summary = {
        "run": run.name,
        "path": str(run.path),
        "task": info["data"]["task"],
        "test": {k: metrics.get(k) for k in ("accuracy", "micro_f1", "macro_f1") if k in metrics},
        "best_valid_metric": fit.get("best_valid_metric"),
        "stopped": fit.get("stopped"),
        "fit_seconds": info["timings"]["fit_seconds"],
        "train_docs_per_s": fit.get("train_docs_per_s"),
        "predict_docs_per_s_batch1": info["timings"].get("predict_docs_per_s_batch1"),
        "predict_docs_per_s_batch32": info["timings"].get("predict_docs_per_s_batch32"),
        "model_size_bytes": info.get("model_size_bytes"),
    }
    tune = info.get("tune")
    if tune:
        summary["tune"] = tune
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    from rich.table import Table

    from nlpkit.report.render_text import fmt_bytes

    table = Table(title=f"Fine-tuned run {run.name}", show_header=False, title_justify="left")
    table.add_column("", style="bold")
    table.add_column("")
    for key, value in summary["test"].items():
        table.add_row(f"test {key}", "-" if value is None else f"{value:.4f}")
    rows = [
        ("best valid metric", summary["best_valid_metric"], "{:.4f}"),
        ("stopped", summary["stopped"], "{}"),
        ("fit seconds", summary["fit_seconds"], "{:.1f}"),
        ("train docs/s", summary["train_docs_per_s"], "{:.1f}"),
        ("predict docs/s (batch 1)", summary["predict_docs_per_s_batch1"], "{:.1f}"),
        ("predict docs/s (batch 32)", summary["predict_docs_per_s_batch32"], "{:.1f}"),
        ("model size", fmt_bytes(summary["model_size_bytes"]) if summary["model_size_bytes"] else None, "{}"),
        ("run folder", summary["path"], "{}"),
    ]
    if tune:
        rows.insert(2, ("tuned", _tune_line(tune), "{}"))
    for label, value, fmt in rows:
        table.add_row(label, "-" if value is None else fmt.format(value))
    out().print(table)


def _print_seeds(runs: list, as_json: bool) -> None:
    """One line per seed: its test score, best valid metric and time."""
    rows = []
    for run in runs:
        metrics = run.metrics()["test"]["metrics"]
        fit = run.info.get("fit_info", {})
        rows.append({"run": run.name, "seed": run.info.get("seed"),
                     "test": {k: metrics.get(k) for k in ("accuracy", "micro_f1", "macro_f1") if k in metrics},
                     "best_valid_metric": fit.get("best_valid_metric"), "stopped": fit.get("stopped"),
                     "fit_seconds": run.info["timings"]["fit_seconds"], "role": run.role, "tune": run.info.get("tune")})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    headline = "accuracy" if "accuracy" in rows[0]["test"] else "micro_f1"
    table = Table(title="Fine-tuned runs, one per seed (`nlpkit report` shows their mean with a seed-aware interval)",
                  title_justify="left")
    for col in ("seed", f"test {headline}", "best valid", "stopped", "fit s", "run"):
        table.add_column(col)
    for r in rows:
        value = r["test"].get(headline)
        table.add_row(str(r["seed"]), "-" if value is None else f"{value:.4f}",
                      "-" if r["best_valid_metric"] is None else f"{r['best_valid_metric']:.4f}", str(r["stopped"]),
                      f"{r['fit_seconds']:.1f}", r["run"])
    out().print(table)
    if rows[0]["tune"]:
        out().print(f"tuned with seed {rows[0]['seed']}: {_tune_line(rows[0]['tune'])}; the other seeds used its choice",
                    highlight=False)


def _tune_line(tune: dict) -> str:
    """'trial 3 of 12 (lr 1e-4, head lr 3e-3, batch 32), search 412 s of a 1800 s budget, 5 pruned'."""
    def settings(t: dict) -> str:
        head = "= lr" if t.get("head_lr") is None else format(t["head_lr"], "g")
        return f"lr {t['lr']:g}, head lr {head}" + (f", batch {t['batch_size']}" if t.get("batch_size") else "")

    chosen, trials = tune["chosen"], tune["trials"]
    budget = f" of a {tune['budget_seconds']:g} s budget" if tune.get("budget_seconds") else ""
    skipped = sum(1 for t in trials if t.get("skipped"))
    pruned = sum(1 for t in trials if (t.get("stopped") or "").startswith("pruned"))
    return (f"trial {chosen + 1} of {len(trials)} ({settings(trials[chosen])}), search {tune['seconds']:.0f} s{budget}"
            + (f", {pruned} pruned" if pruned else "") + (f", {skipped} skipped for the budget" if skipped else ""))


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune_cmd)

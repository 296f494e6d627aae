"""``finetune()``: the Python API behind ``nlpkit finetune``.

Checks the checkpoint folder and options, loads the split, fine-tunes a
:class:`~nlpkit.models.transformer.TransformerClassifier` on it and records a scored run like every
baseline (:func:`nlpkit.experiment.run_experiment`), with what the model started from
(:func:`base_model_info`). Under a distributed launch only rank 0 records the run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpkit.hf.checkpoint import check_checkpoint_dir, check_max_length
from nlpkit.seeds import check_seed
from nlpkit.training.distributed import dist_context

if TYPE_CHECKING:
    from nlpkit.runs import Run


# Options that do not change what a fine-tuning learns: a --resume may change them.
NOT_IN_FINGERPRINT = ("threads", "throughput_docs", "predict_batch_size", "time_budget")
RESUME_FOLDER = ".resume"  # under the runs folder; dot folders are not runs
CHECKPOINT_SECONDS = 600.0  # training time between two saves of the training state (and at every evaluation)


def finetune(split_dir: str | os.PathLike, model_dir: str | os.PathLike, *, seed: int = 0,
             runs_dir: str | os.PathLike | None = None, name: str | None = None,
             rule_strategy: str = "auto", progress=None, stage=None, fold: int | None = None,
             resume: bool = False, checkpoint_seconds: float = CHECKPOINT_SECONDS, role: str | None = None,
             extra_info: dict | None = None, **options: Any) -> "Run | None":
    """Fine-tune a local checkpoint on a split and record a scored run (like every baseline).

    Parameters
    ----------
    split_dir : a split folder written by ``nlpkit split`` (train, optional valid, test).
    model_dir : a local Hugging Face checkpoint folder (``nlpkit pretrain`` output, BERT, ...).
    seed : seeds weight initialisation of the head, dropout and batch order.
    runs_dir : the runs registry (default ``$NLPKIT_RUNS_DIR`` or ``./runs``).
    name : optional label stored in ``run.json`` as ``config.name``.
    fold : for a k-fold split, the fold to run on (see :func:`nlpkit.data.fold_split`).
    progress : optional ``rich.progress.Progress``; fine-tuning adds a task to it and advances it.
    stage : optional ``callable(stage_name)`` told when each experiment stage starts.
    resume : continue the interrupted fine-tuning of the same split, checkpoint and options (its
        training state is kept under ``<runs>/.resume/`` until the run is recorded); the result is
        the one an uninterrupted run gives.
    checkpoint_seconds : training time between two saves of that state (also saved at every evaluation).
    role : recorded in run.json (see :attr:`nlpkit.runs.Run.role`).
    extra_info : more run.json fields (e.g. a learning-curve point's "curve").
    options : :class:`~nlpkit.models.transformer.TransformerClassifier` parameters
        (``epochs``, ``lr``, ``batch_size``, ``max_length``, ``long_text``, ...).

    Returns
    -------
    The recorded :class:`~nlpkit.runs.Run` (``None`` on non-zero ranks of a distributed launch,
    which train but do not record).
    """
    import shutil
    import tempfile

    from nlpkit.data import load_experiment_split
    from nlpkit.experiment import run_experiment
    from nlpkit.models.transformer import TransformerClassifier

    check_seed(seed)
    check_checkpoint_dir(model_dir)
    if "max_length" in options:
        check_max_length(model_dir, int(options["max_length"]))
    split = load_experiment_split(split_dir, fold)
    model = TransformerClassifier(model=str(model_dir), seed=seed, **options)
    config = {"split_dir": str(split.path), **model.get_params()}
    if name:
        config["name"] = name
    fingerprint = resume_fingerprint(split, model_dir, model.get_params(), fold=fold, rule_strategy=rule_strategy)
    model.checkpointing = _checkpointing(runs_dir, fingerprint, resume=resume, every_seconds=checkpoint_seconds)
    if model.checkpointing.state is not None:
        config["resumed"] = True
    extra = {"base_model": base_model_info(model_dir)}
    if role is not None:
        extra["role"] = role
    extra.update(extra_info or {})
    if dist_context().is_main:
        run = run_experiment(model, split, kind="finetune", config=config, seed=seed, runs_root=runs_dir,
                             rule_strategy=rule_strategy, progress=stage, fit_progress=progress, extra_info=extra)
        model.checkpointing.path.unlink(missing_ok=True)  # recorded: nothing left to resume
        return run
    # Other ranks take part in training (DDP) and record into a scratch registry, thrown away.
    scratch = tempfile.mkdtemp(prefix="nlpkit-rank")
    try:
        run_experiment(model, split, kind="finetune", config=config, seed=seed, runs_root=scratch,
                       rule_strategy=rule_strategy, extra_info=extra)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return None


def resume_fingerprint(split, model_dir, params: dict, *, fold: int | None, rule_strategy: str) -> str:
    """sha256 over what a fine-tuning learns from: the split's contents, the checkpoint folder's
    files (names and sizes; contents of the small ones) and every option that changes the result."""
    import hashlib
    import json

    folder = Path(model_dir)
    files = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = f.stat().st_size
        # weights are identified by size; configs and vocabularies (small) by content
        files[str(f.relative_to(folder))] = hashlib.sha256(f.read_bytes()).hexdigest() if size < 16_000_000 else size
    kept = {k: v for k, v in params.items() if k not in NOT_IN_FINGERPRINT and k != "model"}
    payload = json.dumps({"split": split.fingerprint, "train": split.train.fingerprint() if split.train is not None else None,
                          "fold": fold, "checkpoint": files, "params": kept,
                          "rule_strategy": rule_strategy}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _checkpointing(runs_dir, fingerprint: str, *, resume: bool, every_seconds: float):
    """Where this fine-tuning keeps its training state; with ``resume``, the state to go on from."""
    import warnings

    from nlpkit.errors import ConfigError, NlpkitError
    from nlpkit.models.transformer import Checkpointing, FinetuneWarning
    from nlpkit.runs import runs_root
    from nlpkit.state_file import load_state

    path = runs_root(runs_dir) / RESUME_FOLDER / f"finetune-{fingerprint[:24]}.safetensors"
    if not resume:
        if path.is_file():
            warnings.warn(f"an interrupted fine-tuning with these options was kept in {path}; this run starts again "
                          "from step 0 and replaces it (add --resume to the same command to continue it instead).",
                          FinetuneWarning, stacklevel=3)
        return Checkpointing(path=path, fingerprint=fingerprint, every_seconds=every_seconds)
    if not path.is_file():
        raise ConfigError(f"--resume: no interrupted fine-tuning of this split, checkpoint and options under "
                          f"{path.parent}; give the same split, --model and options as the interrupted command "
                          "(--threads and --time-budget may change), or leave out --resume to start again.")
    fix = "delete it and start again without --resume"
    state = load_state(path, what="fine-tuning checkpoint", fix=fix)
    needed = ("fingerprint", "model", "optimizer", "counters", "data", "loss", "rng", "history")
    missing = [k for k in needed if not isinstance(state, dict) or k not in state]
    if missing:
        raise NlpkitError(f"fine-tuning checkpoint {path} is incomplete (no {missing[0]!r}); {fix}.")
    if state["fingerprint"] != fingerprint:
        raise NlpkitError(f"fine-tuning checkpoint {path} belongs to another run (its fingerprint differs); {fix}.")
    return Checkpointing(path=path, fingerprint=fingerprint, every_seconds=every_seconds, state=state)


def base_model_info(model_dir: str | os.PathLike) -> dict:
    """What the fine-tune started from: folder, architecture, size, and the pretraining run if any."""
    import json

    path = Path(model_dir)
    info: dict[str, Any] = {"path": str(path.resolve())}
    try:
        with open(path / "config.json", encoding="utf-8") as fh:
            cfg = json.load(fh)
        info.update({k: cfg.get(k) for k in ("model_type", "num_hidden_layers", "hidden_size", "vocab_size")})
    except (OSError, ValueError):
        pass
    run_json = path.parent / "run.json"  # a model/ folder inside an `nlpkit pretrain` run
    if run_json.is_file():
        try:
            with open(run_json, encoding="utf-8") as fh:
                run = json.load(fh)
            if isinstance(run, dict) and run.get("kind") == "pretrain":
                info["pretrain_run"] = run.get("name")
        except (OSError, ValueError):
            pass
    return info


# `--tune`: the body's peak learning rate x the new head's x the batch size, tried after the options
# as given. BERT's own fine-tuning grid has batch sizes 16 and 32 (Devlin et al. 2019, appendix A.3);
# the candidates and the search's evidence: docs/benchmarks.md, "nlpkit finetune --tune".
TUNE_LRS = (5e-5, 1e-4, 2e-4)
TUNE_HEAD_LRS = (None, 3e-3)  # None: the head at the body's rate
TUNE_BATCH_SIZES = (16, 32)
TUNED_KEYS = ("lr", "head_lr", "batch_size")
# Under a budget the first trials matter most: a change of one setting comes in this order, the
# defaults study's (batch 32 was the one change above the defaults on most sets; docs/benchmarks.md).
TUNE_ORDER = ("batch_size", "lr", "head_lr")
TRIAL_ROLE, TUNED_ROLE = "tune-trial", "tuned"
# A trial's training gets this share of the budget left: its last evaluation, test scoring and saving
# come on top of --time-budget.
TRIAL_SHARE = 0.8
MIN_TRIAL_SECONDS = 30.0  # a trial with less training time than this is not started
# Under --tune-budget, the options as given (the reference) may train for up to this share of it.
REFERENCE_SHARE = 0.5
# Every other trial is pruned at an evaluation where its best valid so far is below the running mean
# of the reference's valid metric at the same epoch: Vizier's median stopping rule with the reference
# as the completed trial (Golovin et al. 2017, section 3.2.1), not before this share of the planned
# epochs (a grace period, as Optuna's MedianPruner's n_warmup_steps: early curves cross).
PRUNE_GRACE = 1 / 3


def tuned_options(run) -> dict:
    """The settings a ``--tune`` search chose, from its kept run: what another seed trains with."""
    config = run.info.get("config") or {}
    return {key: config.get(key) for key in (*TUNED_KEYS, "time_budget")}


def tune_candidates(options: dict) -> list[dict]:
    """The trials of ``--tune``: first the options as given, then every other (lr, head_lr, batch_size)
    of the grid: those that change fewer settings of the given first, then by :data:`TUNE_ORDER` of
    the first setting they change, then in grid order."""
    from nlpkit.models.transformer import TransformerClassifier

    given = {key: options.get(key, TransformerClassifier.param_defaults[key]) for key in TUNED_KEYS}
    grid = [{"lr": lr, "head_lr": head_lr, "batch_size": batch}
            for lr in TUNE_LRS for head_lr in TUNE_HEAD_LRS for batch in TUNE_BATCH_SIZES]
    others = [c for c in grid if c != given]
    changed = lambda c: [k for k in TUNE_ORDER if c[k] != given[k]]  # noqa: E731
    return [given, *sorted(others, key=lambda c: (len(changed(c)), TUNE_ORDER.index(changed(c)[0])))]


def prune_thresholds(history: list[dict], epochs: int) -> list[list[float]]:
    """``prune_below`` for the other trials, from the reference run's evaluation ``history``: at each of
    its evaluations from :data:`PRUNE_GRACE` of the ``epochs`` on, the running mean of its valid metric."""
    out, seen = [], []
    for h in history:
        if h.get("valid_metric") is None:
            continue
        seen.append(float(h["valid_metric"]))
        if h["epoch"] >= PRUNE_GRACE * epochs - 1e-9:
            out.append([float(h["epoch"]), sum(seen) / len(seen)])
    return out


def _pairs_from_main(pairs: list[list[float]], ctx) -> list[list[float]]:
    """Rank 0's list of pairs on every rank (it alone holds the reference run's record)."""
    from nlpkit.training.distributed import from_main

    n = int(from_main(float(len(pairs)), ctx))
    return [[from_main(pairs[i][0] if ctx.is_main else 0.0, ctx), from_main(pairs[i][1] if ctx.is_main else 0.0, ctx)]
            for i in range(n)]


def finetune_tuned(split_dir: str | os.PathLike, model_dir: str | os.PathLike, *, budget_seconds: float | None = None,
                   seed: int = 0, runs_dir: str | os.PathLike | None = None, name: str | None = None,
                   say=None, **kwargs: Any) -> "Run | None":
    """``nlpkit finetune --tune``: one fine-tuning per :func:`tune_candidates` trial, each recorded with
    the role ``tune-trial``; the trial with the best valid metric (the first on a tie, so the options as
    given win ties) is kept: its run gets the role ``tuned`` and the search's record (``run.json`` "tune").

    The options as given train first, as they would without ``--tune`` (under a budget, for at most
    :data:`REFERENCE_SHARE` of it): the reference. Every other trial then trains, in order, with the
    same plan and is pruned once its best valid metric falls below the reference's running mean at the
    same epoch (:func:`prune_thresholds`), so a poor trial costs a few epochs and a good one runs to
    its end. ``budget_seconds`` bounds the whole search (wall clock): each trial's training gets
    :data:`TRIAL_SHARE` of the time left (as ``time_budget``, capped by the caller's), and trials are
    recorded as skipped once that is under :data:`MIN_TRIAL_SECONDS`.
    ``kwargs`` go to :func:`finetune` (``resume`` is refused: a search is restarted, not resumed).
    Returns the kept run (None on non-zero ranks of a distributed launch).
    """
    import math
    import time

    from nlpkit.errors import ConfigError
    from nlpkit.models.transformer import TransformerClassifier
    from nlpkit.training.distributed import dist_context, from_main

    if kwargs.get("resume"):
        raise ConfigError("--resume continues one fine-tuning, not a --tune search; run the search again without "
                          "--resume (or resume the interrupted trial without --tune).")
    if budget_seconds is not None and not budget_seconds > 0:
        raise ConfigError(f"--tune-budget must be a positive duration, got {budget_seconds!r}.")
    if budget_seconds is not None and budget_seconds * REFERENCE_SHARE * TRIAL_SHARE < MIN_TRIAL_SECONDS:
        raise ConfigError(f"--tune-budget {budget_seconds:g} s cannot give a trial {MIN_TRIAL_SECONDS:.0f} s of "
                          f"training; give at least {math.ceil(MIN_TRIAL_SECONDS / TRIAL_SHARE / REFERENCE_SHARE)} s.")
    if kwargs.get("prune_below") is not None:
        raise ConfigError("prune_below is set by --tune itself, from the reference run; leave it out.")
    say = say or (lambda _msg: None)
    ctx = dist_context()
    trials = tune_candidates(kwargs)
    epochs = int(kwargs.get("epochs") or TransformerClassifier.param_defaults["epochs"])
    started = time.perf_counter()
    record: list[dict] = []
    done: list[tuple[dict, Any]] = []  # (its record, its run) for each trial that ran

    def seconds_left(share: float = 1.0) -> float | None:
        # rank 0's clock on every rank, so that all ranks run (or skip) the same trials
        if budget_seconds is None:
            return None
        return from_main((budget_seconds * share - (time.perf_counter() - started)) * TRIAL_SHARE, ctx)

    def run_trial(pair: dict, label: str, seconds: float | None, **extra) -> Any:
        options = {**kwargs, **pair, **extra}
        if seconds is not None:
            options["time_budget"] = max(min(options.get("time_budget") or math.inf, seconds), 1.0)
        head = "= lr" if pair["head_lr"] is None else format(pair["head_lr"], "g")
        say(f"{label}/{len(trials)}: lr {pair['lr']:g}, head lr {head}, batch {pair['batch_size']}"
            + (f", training up to {options['time_budget']:.0f} s" if seconds is not None else ""))
        t0 = time.perf_counter()
        run = finetune(split_dir, model_dir, seed=seed, runs_dir=runs_dir, role=TRIAL_ROLE,
                       name=f"{name + ' ' if name else ''}{label}", **options)
        fit = run.info["fit_info"] if run is not None else {}
        record.append({**pair, "run": run.name if run is not None else None,
                       "time_budget": options.get("time_budget"), "valid_metric": fit.get("best_valid_metric"),
                       "stopped": fit.get("stopped"), "seconds": round(time.perf_counter() - t0, 1)})
        done.append((record[-1], run))
        if run is not None:
            say(f"  valid {fit.get('best_valid_metric')}, {fit.get('stopped')} ({record[-1]['seconds']:.0f} s)")
        return run

    reference = run_trial(trials[0], "trial 1", seconds_left(REFERENCE_SHARE))
    floors = prune_thresholds(reference.info["fit_info"].get("history") or [], epochs) if reference is not None else []
    floors = _pairs_from_main(floors, ctx)
    for k, pair in enumerate(trials[1:], start=2):
        left = seconds_left()
        if left is not None and left < MIN_TRIAL_SECONDS:
            record.append({**pair, "run": None, "skipped": f"under {MIN_TRIAL_SECONDS:.0f} s of the budget left"})
            continue
        run_trial(pair, f"trial {k}", left, prune_below=floors or None)
    if done[0][1] is None:  # a non-zero rank of a distributed launch: rank 0 records
        return None
    best_record, best_run = max(  # the best valid metric; on a tie the earlier trial (the reference first)
        done, key=lambda pair: pair[0]["valid_metric"] if pair[0]["valid_metric"] is not None else -math.inf)
    summary = {"trials": record, "chosen": record.index(best_record), "budget_seconds": budget_seconds,
               "seconds": round(time.perf_counter() - started, 1), "decided_on": "best valid metric of each trial",
               "pruned_below": floors}
    best_run.update_info(role=TUNED_ROLE, tune=summary)
    return best_run

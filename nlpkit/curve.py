"""``nlpkit curve``: learning curves, the answer to "would more labelled data change the answer?".

Each model is trained on nested, stratified fractions of the train part (the same iterative
stratification as ``nlpkit split``; a smaller fraction's documents are all in every larger one), with
the valid part whole and used as each model uses it (decisions, early stopping; tfidf-lr's cross-fit
over train + valid), and scored on the unchanged test part. Every point is a recorded run with the
role ``curve-point`` and ``run.json`` "curve" (fraction, training documents, seed), so reports draw
the curves and keep the points out of the leaderboard.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from nlpkit.errors import ConfigError

if TYPE_CHECKING:
    from nlpkit.data import Split
    from nlpkit.runs import Run

CURVE_ROLE = "curve-point"
DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def parse_fractions(text: str) -> list[float]:
    """``"0.1,0.25,1"`` as sorted distinct fractions in (0, 1]; a one-line ConfigError otherwise."""
    out = []
    for part in str(text).split(","):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(f"--fractions: {part.strip()!r} is not a number; give fractions of the train part "
                              "in (0, 1], e.g. --fractions 0.1,0.25,0.5,1.") from None
        if not 0 < value <= 1:
            raise ConfigError(f"--fractions: {value:g} is not in (0, 1]; a point trains on that share of the train "
                              "part (1 = all of it).")
        out.append(value)
    if len(set(out)) != len(out):
        raise ConfigError(f"--fractions gives a fraction twice ({text}); give each once.")
    return sorted(out)


def nested_fractions(split: "Split", fractions: list[float], seed: int) -> dict[float, Any]:
    """``{fraction: train subset}``: stratified, nested (each fraction's documents are in every larger
    one), seeded. A fraction of fewer than one document is an error naming it."""
    from nlpkit.split import carve

    train = split.train
    n = len(train)
    subsets: dict[float, Any] = {}
    current = train
    for fraction in sorted(fractions, reverse=True):
        size = int(round(fraction * n))
        if size < 1:
            raise ConfigError(f"--fractions {fraction:g} of {n} training documents is no document; use a larger "
                              "fraction.")
        if size < len(current):
            _kept, carved = carve(current.y, size, order=1, seed=seed)
            current = current.subset(carved)
        subsets[fraction] = current
    return subsets


def fraction_view(split: "Split", train) -> "Split":
    """``split`` with another train part: the same folder, fingerprint, valid and test parts."""
    from nlpkit.data import Split

    parts = {**split.parts, "train": train}
    return Split(path=split.path, manifest=dict(split.manifest), parts=parts, label_names=list(split.label_names),
                 task=split.task)


def missing_label_note(split: "Split", train, fraction: float) -> str | None:
    """A note when labels of the full train part have no document in this fraction (they cannot be learned)."""
    import numpy as np

    full = np.asarray(split.train.y.sum(axis=0)).ravel() > 0
    here = np.asarray(train.y.sum(axis=0)).ravel() > 0
    lost = [name for name, a, b in zip(split.label_names, full, here) if a and not b]
    if not lost:
        return None
    shown = ", ".join(lost[:5]) + (f" (+{len(lost) - 5} more)" if len(lost) > 5 else "")
    return (f"at fraction {fraction:g}, {len(lost)} label(s) of the train part have no training document "
            f"({shown}): that point cannot predict them.")


def default_jobs(n_tasks: int) -> int:
    """Baseline points trained side by side: one per usable CPU, no more than there are points."""
    from joblib import cpu_count

    return max(1, min(n_tasks, cpu_count()))


def learning_curve(split_dir: str | os.PathLike, *, baselines: list[str] = (), finetune_model=None,
                   fractions: list[float] = DEFAULT_FRACTIONS, seeds: list[int] = (0,), runs_dir=None,
                   finetune_options: dict | None = None, settings: list[str] | None = None, say=None,
                   progress=None, jobs: int | None = None) -> list["Run"]:
    """One recorded run per model, fraction and seed (role ``curve-point``); returns them.

    ``baselines``: nlpkit baseline models (defaults, ``settings`` as ``--set`` takes them), their
    points trained in ``jobs`` worker processes side by side (None: :func:`default_jobs`; 1: one
    after another in this process; the same runs either way, seeded);
    ``finetune_model``: a checkpoint folder fine-tuned at every point too (``finetune_options`` as
    :func:`nlpkit.finetune.finetune` takes them), one point at a time with every CPU. Notes (labels
    a fraction loses) go to ``say`` and into each run's "curve" record.
    """
    from nlpkit.baseline import baseline_config, check_baselines
    from nlpkit.data import load_split

    if not baselines and finetune_model is None:
        raise ConfigError("nothing to draw: give baseline models (-m tfidf-lr ...) and/or --finetune-model DIR.")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give 1 or more worker processes.")
    split = load_split(split_dir)
    if split.train is None or split.test is None:
        raise ConfigError(f"{split_dir} has no train or no test part; a learning curve needs both "
                          "(a k-fold split: not supported, make a split with a test part).")
    say = say or (lambda _msg: None)
    configs = {seed: baseline_config(list(baselines), seed=seed, settings=settings) for seed in seeds} if baselines else {}
    points = []  # (seed, fraction, view, curve record)
    for seed in seeds:
        subsets = nested_fractions(split, list(fractions), seed)
        for fraction in sorted(subsets):
            train = subsets[fraction]
            note = missing_label_note(split, train, fraction)
            if note:
                say(f"warning: {note}")
            curve = {"fraction": fraction, "n_train": len(train), "seed": seed,
                     "uses": "this share of the train part; valid whole, used as the model always uses it",
                     **({"note": note} if note else {})}
            points.append((seed, fraction, fraction_view(split, train), curve))
    tasks = [(view, {**configs[seed], "models": [name]}, {"role": CURVE_ROLE, "curve": curve})
             for seed, _fraction, view, curve in points for name in baselines]
    for view, config, _extra in tasks:
        check_baselines(view, config)  # every point's options checked before the first trains
    runs = _train_points(tasks, runs_dir, jobs or default_jobs(len(tasks)), progress=progress, say=say)
    if finetune_model is not None:
        from nlpkit.finetune import finetune

        for seed, fraction, view, curve in points:
            say(f"fine-tuning at fraction {fraction:g} ({curve['n_train']:,} training documents), seed {seed}")
            runs.append(finetune(view, finetune_model, seed=seed, runs_dir=runs_dir, role=CURVE_ROLE,
                                 extra_info={"curve": curve}, **(finetune_options or {})))
    return runs


def _train_points(tasks: list, runs_dir, jobs: int, *, progress, say) -> list["Run"]:
    """Each task's one baseline run, in task order. With ``jobs`` > 1 they train in that many spawned
    worker processes, the largest shares first; each worker's BLAS and joblib threads are cut to its
    share of the CPUs so the workers do not oversubscribe them."""
    from nlpkit.runs import load_run

    if jobs <= 1 or len(tasks) <= 1:
        out = []
        for view, config, extra in tasks:
            say(_point_label(config, extra))
            out += _baseline_point(view, config, runs_dir, extra, progress)
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from joblib import cpu_count

    threads = max(1, cpu_count() // jobs)
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i][2]["curve"]["n_train"])
    paths: list = [None] * len(tasks)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_limit_threads,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(_point_in_worker, *tasks[i][:2], None if runs_dir is None else str(runs_dir),
                               tasks[i][2]): i for i in order}
        for done, future in enumerate(as_completed(futures), 1):
            i = futures[future]
            paths[i] = future.result()  # a worker's error reaches the caller as raised there
            say(f"[{done}/{len(tasks)}] {_point_label(tasks[i][1], tasks[i][2])}")
    return [load_run(path) for path in paths]


def _point_label(config: dict, extra: dict) -> str:
    curve = extra["curve"]
    return (f"{config['models'][0]} at fraction {curve['fraction']:g} ({curve['n_train']:,} training documents), "
            f"seed {curve['seed']}")


def _baseline_point(view, config: dict, runs_dir, extra: dict, progress=None) -> list["Run"]:
    from nlpkit.baseline import run_baselines

    return run_baselines(view, config, runs_root=runs_dir, progress=progress, extra_info=extra)


def _point_in_worker(view, config: dict, runs_dir, extra: dict) -> str:
    try:
        return str(_baseline_point(view, config, runs_dir, extra)[0].path)
    finally:
        # A pool worker ends without atexit handlers, so joblib's idle process pool (per-label fits)
        # would keep it alive for loky's 300 s idle timeout: stop that pool now.
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)


def _limit_threads(threads: int) -> None:
    """A worker's share of the CPUs: BLAS/OpenMP pools and joblib's process count."""
    for name in ("LOKY_MAX_CPU_COUNT", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)  # read when the libraries load
    import numpy  # noqa: F401  (loads BLAS, so the limit below reaches it too)
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)

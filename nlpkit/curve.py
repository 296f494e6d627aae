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


def learning_curve(split_dir: str | os.PathLike, *, baselines: list[str] = (), finetune_model=None,
                   fractions: list[float] = DEFAULT_FRACTIONS, seeds: list[int] = (0,), runs_dir=None,
                   finetune_options: dict | None = None, settings: list[str] | None = None, say=None,
                   progress=None) -> list["Run"]:
    """One recorded run per model, fraction and seed (role ``curve-point``); returns them.

    ``baselines``: nlpkit baseline models (defaults, ``settings`` as ``--set`` takes them);
    ``finetune_model``: a checkpoint folder fine-tuned at every point too (``finetune_options`` as
    :func:`nlpkit.finetune.finetune` takes them). Notes (labels a fraction loses) go to ``say`` and
    into each run's "curve" record.
    """
    from nlpkit.baseline import baseline_config, run_baselines
    from nlpkit.data import load_split

    if not baselines and finetune_model is None:
        raise ConfigError("nothing to draw: give baseline models (-m tfidf-lr ...) and/or --finetune-model DIR.")
    split = load_split(split_dir)
    if split.train is None or split.test is None:
        raise ConfigError(f"{split_dir} has no train or no test part; a learning curve needs both "
                          "(a k-fold split: not supported, make a split with a test part).")
    say = say or (lambda _msg: None)
    configs = {seed: baseline_config(list(baselines), seed=seed, settings=settings) for seed in seeds} if baselines else {}
    runs: list = []
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
            view = fraction_view(split, train)
            extra = {"role": CURVE_ROLE, "curve": curve}
            say(f"fraction {fraction:g} ({len(train):,} training documents), seed {seed}")
            if baselines:
                runs += run_baselines(view, configs[seed], runs_root=runs_dir, progress=progress, extra_info=extra)
            if finetune_model is not None:
                from nlpkit.finetune import finetune

                runs.append(finetune(view, finetune_model, seed=seed, runs_dir=runs_dir, role=CURVE_ROLE,
                                     extra_info={"curve": curve}, **(finetune_options or {})))
    return runs

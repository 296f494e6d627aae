"""The learning-rate schedule: linear warm-up, then a linear or cosine decay to a floor.

One function for pretraining (decay over the whole run, by steps or by elapsed time) and
fine-tuning (BERT's schedule: decay over the steps after the warm-up).
"""

from __future__ import annotations

import math

SHAPES = ("linear", "cosine")


def lr_multiplier(step: int, *, total_steps: int | None = None, progress: float | None = None,
                  warmup: float = 0.0, shape: str = "linear", min_ratio: float = 0.0,
                  decay_after_warmup: bool = False, scale: float = 1.0) -> float:
    """Learning-rate multiplier for optimizer step ``step`` (0-based): ``scale x warm-up x decay``.

    Parameters
    ----------
    step : optimizer steps done before this one.
    total_steps : planned optimizer steps; needed unless ``progress`` is given.
    progress : share of the run done, in [0, 1] (default ``step / total_steps``); pretraining
        under a time budget passes elapsed / budget (Cramming, Geiping & Goldstein 2022).
        Unused with ``decay_after_warmup``.
    warmup : linear warm-up to 1; ``>= 1``: a number of steps (``(step + 1) / warmup``),
        ``0 < warmup < 1``: a share of ``progress``, 0: none.
    shape : ``"linear"`` or ``"cosine"`` decay from 1 to ``min_ratio``.
    min_ratio : the floor of the decay, as a share of the peak.
    decay_after_warmup : decay over the steps after the warm-up (BERT, Devlin et al. 2019; HF
        ``get_linear_schedule_with_warmup``) instead of over the whole run multiplied by the
        warm-up (nanoGPT ``get_lr`` with the decay starting at step 0). Needs ``total_steps`` and
        ``warmup`` in steps, or ``progress`` and ``warmup`` as a share of it (decay over the
        share after the warm-up).
    scale : multiplied first (``scale * warm * decay``): pass the peak lr to get the rate itself.

    Returns
    -------
    The multiplier (the learning rate when ``scale`` is the peak).
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    if decay_after_warmup and progress is None and (total_steps is None or 0 < warmup < 1):
        raise ValueError("decay_after_warmup needs total_steps and a warm-up in steps (warmup >= 1 or 0), "
                         "or progress and a warm-up share (warmup < 1)")
    if decay_after_warmup and progress is not None and warmup >= 1:
        raise ValueError("decay_after_warmup with progress needs the warm-up as a share of it (warmup < 1)")
    if progress is None and not decay_after_warmup:
        if total_steps is None:
            raise ValueError("give total_steps or progress")
        progress = step / total_steps
    if warmup >= 1:
        warm = min(1.0, (step + 1) / warmup)
    elif warmup > 0:
        warm = min(1.0, max(progress, 1e-9) / warmup)
    else:
        warm = 1.0
    if decay_after_warmup and progress is not None:
        p = min(max(progress, 0.0), 1.0)
        remaining = 1.0 if p < warmup else max(0.0, (1.0 - p) / (1.0 - warmup))
        p = 1.0 - remaining
    elif decay_after_warmup:
        if step < warmup or total_steps <= warmup:
            remaining = 1.0
        else:
            remaining = max(0.0, (total_steps - step) / (total_steps - warmup))
        p = 1.0 - remaining
    else:
        p = min(max(progress, 0.0), 1.0)
        remaining = 1.0 - p
    decay = remaining if shape == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
    return scale * warm * (min_ratio + (1.0 - min_ratio) * decay)

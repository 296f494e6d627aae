"""Count-based metrics from per-label true-positive / false-positive / false-negative counts.

Every function works on the last axis, so the same code scores one evaluation (shape ``(L,)``) or a
batch of bootstrap resamples (shape ``(B, L)``).

Zero-division conventions (the same as scikit-learn's ``zero_division=0`` / ``"warn"`` default):
precision = tp / (tp + fp) is 0 when nothing was predicted; recall = tp / (tp + fn) is 0 when the
label has no true positive; F1 = 2 tp / (2 tp + fp + fn) is 0 when both are empty. Macro averages run
over *all* labels, so a label absent from both truth and prediction counts as 0; weighted averages
weight each label by its support (tp + fn) and are 0 when the total support is 0.
"""

from __future__ import annotations

import numpy as np

from nlpkit.metrics._arrays import safe_divide


def precision_recall_f1(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Element-wise precision, recall and F1 with zero_division = 0."""
    tp = np.asarray(tp, dtype=np.float64)
    return safe_divide(tp, tp + fp), safe_divide(tp, tp + fn), safe_divide(2 * tp, 2 * tp + fp + fn)


def micro(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool the counts over labels (last axis), then precision, recall, F1."""
    return precision_recall_f1(np.sum(tp, axis=-1), np.sum(fp, axis=-1), np.sum(fn, axis=-1))


def macro(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unweighted mean over labels (last axis) of per-label precision, recall, F1."""
    return tuple(np.mean(m, axis=-1) for m in precision_recall_f1(tp, fp, fn))


def weighted(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Support-weighted mean over labels (last axis) of per-label precision, recall, F1."""
    support = np.asarray(tp, dtype=np.float64) + fn
    total = support.sum(axis=-1)
    return tuple(safe_divide((m * support).sum(axis=-1), total) for m in precision_recall_f1(tp, fp, fn))


AVERAGES = {"micro": micro, "macro": macro, "weighted": weighted}

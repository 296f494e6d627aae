"""``evaluate``: true labels and predicted scores in, every metric out (one JSON-ready dict)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.metrics import counts, ranking
from nlpkit.metrics._arrays import as_label_matrix, as_score_matrix, safe_divide
from nlpkit.metrics.rules import TASKS, Argmax, DecisionRule, FixedThreshold


def _num(x) -> float | None:
    """A plain Python float, or None for NaN (undefined)."""
    x = float(x)
    return None if np.isnan(x) else x


def _label_counts(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = (y & pred).sum(axis=0).astype(np.float64)
    return tp, pred.sum(axis=0) - tp, y.sum(axis=0) - tp


def _averaged_prf(tp, fp, fn) -> dict[str, float]:
    out = {}
    for average, fn_avg in counts.AVERAGES.items():
        p, r, f = fn_avg(tp, fp, fn)
        out.update(
            {f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f)}
        )
    return out


def _per_label_table(names, y, tp, fp, fn) -> list[dict[str, Any]]:
    p, r, f = counts.precision_recall_f1(tp, fp, fn)
    support = y.sum(axis=0)
    return [
        {
            "label": names[j],
            "support": int(support[j]),
            "predicted": int(tp[j] + fp[j]),
            "precision": float(p[j]),
            "recall": float(r[j]),
            "f1": float(f[j]),
        }
        for j in range(len(names))
    ]


def _evaluate_single(y, scores, pred, names, ks) -> dict[str, Any]:
    n, n_labels = y.shape
    n_true = y.sum(axis=1)
    if (n_true != 1).any():
        i = int(np.flatnonzero(n_true != 1)[0])
        raise NlpkitError(
            f"single-label evaluation needs exactly one true label per document, document {i} has "
            f"{int(n_true[i])}; evaluate it with task='multi'"
        )
    if (pred.sum(axis=1) != 1).any():
        raise NlpkitError(
            "single-label evaluation needs a decision rule that predicts exactly one label per "
            "document; use Argmax"
        )
    true_idx = y.argmax(axis=1)
    pred_idx = pred.argmax(axis=1)
    tp, fp, fn = _label_counts(y, pred)
    metrics: dict[str, Any] = {"accuracy": float((true_idx == pred_idx).mean())}
    metrics.update(_averaged_prf(tp, fp, fn))
    # Log loss over all L columns: clip away zeros, renormalise each row to a distribution.
    prob = np.clip(scores, np.finfo(np.float64).eps, None)
    prob = prob / prob.sum(axis=1, keepdims=True)
    metrics["log_loss"] = float(-np.log(prob[np.arange(n), true_idx]).mean())
    confusion = np.bincount(true_idx * n_labels + pred_idx, minlength=n_labels * n_labels)
    return {
        "metrics": metrics,
        "per_label": _per_label_table(names, y, tp, fp, fn),
        "confusion_matrix": confusion.reshape(n_labels, n_labels).tolist(),
    }


def _evaluate_multi(y, scores, pred, names, ks) -> dict[str, Any]:
    n = y.shape[0]
    tp, fp, fn = _label_counts(y, pred)
    metrics: dict[str, Any] = _averaged_prf(tp, fp, fn)
    # Samples average: per-document P/R/F1 (zero_division = 0), then the mean over documents.
    doc_tp = (y & pred).sum(axis=1)
    doc_pred = pred.sum(axis=1)
    doc_true = y.sum(axis=1)
    metrics["samples_precision"] = float(safe_divide(doc_tp, doc_pred).mean())
    metrics["samples_recall"] = float(safe_divide(doc_tp, doc_true).mean())
    metrics["samples_f1"] = float(safe_divide(2 * doc_tp, doc_pred + doc_true).mean())
    metrics["subset_accuracy"] = float((y == pred).all(axis=1).mean())
    metrics["hamming_loss"] = float((y != pred).mean())
    metrics["lrap"] = ranking.label_ranking_average_precision(y, scores)
    metrics["coverage_error"] = ranking.coverage_error(y, scores)

    ap, auc = ranking.ap_and_auc_columns(y, scores)
    n_pos = y.sum(axis=0)
    defined = (n_pos > 0) & (n_pos < n)  # both a positive and a negative in y_true
    flat_y, flat_s = y.reshape(-1, 1), scores.reshape(-1, 1)
    micro_ap, micro_auc = ranking.ap_and_auc_columns(flat_y, flat_s)
    metrics["macro_roc_auc"] = _num(auc[defined].mean()) if defined.any() else None
    metrics["micro_roc_auc"] = _num(micro_auc[0])
    metrics["macro_average_precision"] = _num(ap[defined].mean()) if defined.any() else None
    metrics["micro_average_precision"] = _num(micro_ap[0])
    metrics["n_labels_without_positives"] = int((n_pos == 0).sum())
    metrics["n_labels_without_negatives"] = int((n_pos == n).sum())
    metrics.update(ranking.precision_recall_at_k(y, scores, ks))

    table = _per_label_table(names, y, tp, fp, fn)
    for j, row in enumerate(table):
        row["average_precision"] = _num(ap[j])
        row["roc_auc"] = _num(auc[j])
    return {
        "metrics": metrics,
        "per_label": table,
        "labels_without_negatives": [names[j] for j in np.flatnonzero(n_pos == n)],
    }


_EVALUATORS: dict[str, Callable[..., dict[str, Any]]] = {"single": _evaluate_single, "multi": _evaluate_multi}
_DEFAULT_RULES: dict[str, Callable[[], DecisionRule]] = {
    "single": Argmax,
    "multi": lambda: FixedThreshold(0.5, at_least_one=True),
}


# The one number a task is judged by first: the model choices made on validation data, early
# stopping, the runs table and cross-validation summaries all use it.
HEADLINE_METRICS = {"single": "accuracy", "multi": "micro_f1"}


def headline_metric(task: str) -> str:
    """``"accuracy"`` for single-label data, ``"micro_f1"`` for multi-label data."""
    if task not in HEADLINE_METRICS:
        raise ConfigError(f"task must be 'single' or 'multi', got {task!r}")
    return HEADLINE_METRICS[task]


def evaluate(
    y_true,
    scores,
    *,
    task: str,
    label_names: Sequence[str] | None = None,
    rule: DecisionRule | dict | None = None,
    ks: Sequence[int] = (1, 3, 5),
) -> dict[str, Any]:
    """Every metric of ``scores`` against ``y_true``.

    Parameters
    ----------
    y_true
        csr or dense 0/1 matrix (n_docs, n_labels); single-label rows hold exactly one 1.
    scores
        float (n_docs, n_labels) scores/probabilities, same label order.
    task
        ``"single"`` or ``"multi"``.
    label_names
        Column names (default "0", "1", ...).
    rule
        Turns scores into predictions (a ``DecisionRule`` or its ``to_dict()``). Default: ``Argmax`` (single), ``FixedThreshold(0.5)`` with
        at-least-one (multi). Pass the rule tuned on the validation part.
    ks
        Cut-offs for P@k / R@k (multi-label).

    Returns
    -------
    dict with ``task``, ``n_docs``, ``n_labels``, ``metrics`` (name -> float | int | None),
    ``per_label`` (one row per label), ``confusion_matrix`` (single: rows = true, columns =
    predicted), ``labels_without_positives`` (names of labels without a true positive in
    ``y_true``: their ROC-AUC / AP are undefined and left out of the macro averages; they do count,
    as 0, in macro precision/recall/F1 like scikit-learn), and ``rule`` (``rule.to_dict()``).
    Everything is plain Python (JSON-serialisable); undefined values are None.

    Notes
    -----
    Conventions (scikit-learn's, with ``zero_division=0``; see ``nlpkit.metrics.counts``): a
    precision/recall/F1 with a zero denominator is 0; macro averages run over all L labels;
    a document without true labels has samples precision, recall and F1 0 even when nothing is
    predicted for it (scikit-learn's choice), LRAP 1 and coverage error 0. P@k and R@k average over documents
    with at least one true label; ties in a ranking go to the lower label index. Multi-label
    metrics also report ``labels_without_negatives`` (ROC-AUC undefined too) and the counts
    ``n_labels_without_positives`` / ``n_labels_without_negatives`` in ``metrics``.
    Single-label log loss clips scores at machine epsilon and renormalises each row to sum to 1.
    """
    if task not in TASKS:
        raise ConfigError(f"task must be 'single' or 'multi', got {task!r}")
    y = as_label_matrix(y_true)
    s = as_score_matrix(scores, y.shape)
    n, n_labels = y.shape
    if n == 0 or n_labels == 0:
        raise NlpkitError(f"cannot evaluate on {n} documents x {n_labels} labels; the test part is empty")
    names = [str(j) for j in range(n_labels)] if label_names is None else [str(x) for x in label_names]
    if len(names) != n_labels:
        raise NlpkitError(
            f"got {len(names)} label names for {n_labels} label columns; pass one name per column"
        )
    bad_ks = [k for k in ks if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1]
    if bad_ks:
        raise ConfigError(f"ks must be whole numbers >= 1, got {bad_ks}")
    if rule is None:
        rule = _DEFAULT_RULES[task]()
    elif isinstance(rule, dict):  # a rule as recorded in run.json
        rule = DecisionRule.from_dict(rule)
    pred = np.asarray(rule.predict(s), dtype=bool)
    result = {"task": task, "n_docs": int(n), "n_labels": int(n_labels)}
    result.update(_EVALUATORS[task](y, s, pred, names, ks))
    result["labels_without_positives"] = [names[j] for j in np.flatnonzero(~y.any(axis=0))]
    result["rule"] = rule.to_dict()
    return result

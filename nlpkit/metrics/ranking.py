"""Ranking metrics computed column-wise in one vectorised pass (no Python loop over labels).

They reproduce scikit-learn's definitions (``average_precision_score``, ``roc_auc_score``,
``label_ranking_average_precision_score``, ``coverage_error``), including their treatment of ties,
but score all labels of a 3,000 x 735 matrix at once instead of one ``sklearn`` call per label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Upper bound on the elements of temporary (chunk x n_labels) matrices (~32 MB of float64).
_CHUNK_ELEMENTS = 1 << 22


@dataclass
class SortedColumns:
    """For each true entry of a (documents x labels) matrix, where its score falls in its column.

    In a column sorted by decreasing score, a positive's tie group (the entries with its exact score)
    starts at position ``start`` and ends at ``end`` (0-based). Every metric here treats a tie group
    as one threshold, so these boundaries and the counts below are all it needs.
    """

    sorted_scores: np.ndarray  # (L, n) each column's scores, increasing
    label: np.ndarray  # (nnz,) column of each positive, grouped by column
    value: np.ndarray  # (nnz,) its score
    end: np.ndarray  # (nnz,) entries scored >= value, minus one
    tp_to_end: np.ndarray  # (nnz,) positives scored >= value (tp when predicting scores >= value)
    fp_to_end: np.ndarray  # (nnz,) negatives scored >= value
    fp_before: np.ndarray  # (nnz,) negatives scored > value
    n_pos: np.ndarray  # (L,)
    n_neg: np.ndarray  # (L,)


def sort_columns(y: np.ndarray, scores: np.ndarray) -> SortedColumns:
    """One sort of every column, then counts for the positives only (O(nnz log n)).

    The loop over labels does a constant number of numpy calls per label with a positive (binary
    searches in the sorted column); it costs milliseconds for hundreds of labels, less than the
    full-matrix gathers a vectorised form would need.
    """
    n, n_labels = scores.shape
    s = np.sort(np.ascontiguousarray(scores.T), axis=1)
    yt = np.ascontiguousarray(y.T)
    label, doc = np.nonzero(yt)
    value = scores[doc, label]
    n_pos = np.bincount(label, minlength=n_labels).astype(np.float64)
    ge = np.empty(label.size, dtype=np.int64)  # entries scored >= value
    gt = np.empty(label.size, dtype=np.int64)  # entries scored > value
    tp_ge = np.empty(label.size, dtype=np.int64)
    tp_gt = np.empty(label.size, dtype=np.int64)
    bounds = np.r_[0, np.cumsum(n_pos.astype(np.int64))]
    for j in np.flatnonzero(n_pos):
        lo, hi = bounds[j], bounds[j + 1]
        v = value[lo:hi]
        ge[lo:hi] = n - np.searchsorted(s[j], v, side="left")
        gt[lo:hi] = n - np.searchsorted(s[j], v, side="right")
        pos_sorted = np.sort(v)
        tp_ge[lo:hi] = (hi - lo) - np.searchsorted(pos_sorted, v, side="left")
        tp_gt[lo:hi] = (hi - lo) - np.searchsorted(pos_sorted, v, side="right")
    return SortedColumns(
        sorted_scores=s,
        label=label,
        value=value,
        end=ge - 1,
        tp_to_end=tp_ge.astype(np.float64),
        fp_to_end=(ge - tp_ge).astype(np.float64),
        fp_before=(gt - tp_gt).astype(np.float64),
        n_pos=n_pos,
        n_neg=n - n_pos,
    )


def ap_and_auc_columns(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average precision and ROC-AUC of every column from one sort; NaN where undefined (AP: no
    positive; AUC: no positive or no negative).

    AP = sum_n (R_n - R_{n-1}) P_n over the distinct thresholds in decreasing order (scikit-learn's
    definition, no interpolation): each positive contributes the precision at the *end* of its tie
    group, divided by the number of positives. AUC = P(score_pos > score_neg) + P(tie) / 2
    (Mann-Whitney U), which equals scikit-learn's trapezoidal area.
    """
    c = sort_columns(y, scores)
    n_labels = scores.shape[1]
    precision_at_end = c.tp_to_end / (c.end + 1)
    # For a positive: negatives below its group + half the negatives inside its group.
    beaten = (c.n_neg[c.label] - c.fp_to_end) + 0.5 * (c.fp_to_end - c.fp_before)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.bincount(c.label, weights=precision_at_end, minlength=n_labels) / c.n_pos
        auc = np.bincount(c.label, weights=beaten, minlength=n_labels) / (c.n_pos * c.n_neg)
    return np.where(c.n_pos > 0, ap, np.nan), np.where((c.n_pos > 0) & (c.n_neg > 0), auc, np.nan)


def label_ranking_average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """Label-ranking average precision (scikit-learn's LRAP).

    For each true label j of document i: (number of true labels scored >= s_ij) / (number of labels
    scored >= s_ij), averaged over the document's true labels, then over documents. A document with
    no true label, or with every label true, scores 1 (scikit-learn's convention).
    """
    n, n_labels = y.shape
    per_doc = np.ones(n)
    n_true = y.sum(axis=1)
    ranked = (n_true > 0) & (n_true < n_labels)
    rows, cols = np.nonzero(y & ranked[:, None])
    if rows.size:
        ratio = np.empty(rows.size)
        step = max(1, _CHUNK_ELEMENTS // n_labels)
        for start in range(0, rows.size, step):
            r, c = rows[start : start + step], cols[start : start + step]
            above = scores[r] >= scores[r, c][:, None]
            ratio[start : start + step] = (above & y[r]).sum(axis=1) / above.sum(axis=1)
        per_doc[ranked] = np.bincount(rows, weights=ratio, minlength=n)[ranked] / n_true[ranked]
    return float(per_doc.mean())


def coverage_error(y: np.ndarray, scores: np.ndarray) -> float:
    """How far down the ranking one must go to cover all true labels, averaged over documents
    (ties counted pessimistically; a document without true labels counts 0, as in scikit-learn)."""
    lowest_true = np.where(y, scores, np.inf).min(axis=1)
    return float((scores >= lowest_true[:, None]).sum(axis=1).mean())


def top_k_hits(y: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Per document, how many of its k highest-scored labels are true; ties at the k-th score go to
    the lower label index (the same set ``TopK(k)`` predicts). Linear time: a partition finds the
    k-th score, no full sort."""
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    above = scores > kth
    tied = scores == kth
    # Fill the remaining slots with the first tied labels in column order.
    room = k - above.sum(axis=1, keepdims=True)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= room))
    return (y & chosen).sum(axis=1)


def precision_recall_at_k(y: np.ndarray, scores: np.ndarray, ks) -> dict[str, float | None]:
    """P@k = |top-k ∩ true| / k and R@k = |top-k ∩ true| / |true|, both averaged over the documents
    with at least one true label (so P@k and R@k describe the same documents). Ties in the ranking
    go to the lower label index. None when k exceeds the number of labels or no document has a
    true label."""
    n_labels = y.shape[1]
    n_true = y.sum(axis=1)
    has = n_true > 0
    y_has, s_has = y[has], scores[has]
    out: dict[str, float | None] = {}
    for k in (int(k) for k in ks):
        if 1 <= k <= n_labels and has.any():
            hits = top_k_hits(y_has, s_has, k)
            out[f"p_at_{k}"] = float((hits / k).mean())
            out[f"r_at_{k}"] = float((hits / n_true[has]).mean())
        else:
            out[f"p_at_{k}"] = None
            out[f"r_at_{k}"] = None
    return out

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
    """Every column sorted by decreasing score (stored transposed: one row per column), and, for each
    true entry, where its tie group starts and ends in that order. Positions are 0-based.

    The order inside a tie group is arbitrary; every metric here treats a tie group as one
    threshold, so only the group boundaries matter. All per-positive quantities cost O(nnz log n)
    after the one sort, so a 3,000 x 735 matrix with few positives is cheap.
    """

    sorted_scores: np.ndarray  # (L, n) decreasing
    label: np.ndarray          # (nnz,) column of each positive, grouped by column
    end: np.ndarray            # (nnz,) position of the end of the positive's tie group
    tp_to_end: np.ndarray      # (nnz,) positives at positions <= end (tp when predicting down to it)
    fp_to_end: np.ndarray      # (nnz,) negatives at positions <= end
    fp_before: np.ndarray      # (nnz,) negatives strictly above the positive's tie group
    n_pos: np.ndarray          # (L,)
    n_neg: np.ndarray          # (L,)


def sort_columns(y: np.ndarray, scores: np.ndarray) -> SortedColumns:
    n_labels, n = scores.shape[1], scores.shape[0]
    neg = -np.ascontiguousarray(scores.T)
    order = np.argsort(neg, axis=1)  # rows of a contiguous array: much faster than axis=0
    s = -np.take_along_axis(neg, order, axis=1)
    yy = np.take_along_axis(np.ascontiguousarray(y.T), order, axis=1)
    differs = (s[:, :-1] != s[:, 1:]).ravel()
    # Flat positions (row * n + column) of group ends and starts; each row's last (first) entry is one.
    is_end = np.ones((n_labels, n), dtype=bool)
    is_end[:, :-1] = differs.reshape(n_labels, n - 1)
    is_start = np.ones((n_labels, n), dtype=bool)
    is_start[:, 1:] = is_end[:, :-1]
    ends = np.flatnonzero(is_end)
    starts = np.flatnonzero(is_start)
    positives = np.flatnonzero(yy)  # sorted, grouped by row
    label, position = np.divmod(positives, n)
    row_base = label * n
    end_flat = ends[np.searchsorted(ends, positives, side="left")]
    start_flat = starts[np.searchsorted(starts, positives, side="right") - 1]
    # Positives of the same row before a flat position, by counting in the sorted positives list.
    first_pos_of_row = np.searchsorted(positives, row_base, side="left")
    tp_to_end = np.searchsorted(positives, end_flat, side="right") - first_pos_of_row
    tp_before = np.searchsorted(positives, start_flat, side="left") - first_pos_of_row
    end = end_flat - row_base
    start = start_flat - row_base
    n_pos = np.bincount(label, minlength=n_labels).astype(np.float64)
    return SortedColumns(
        sorted_scores=s, label=label, end=end, tp_to_end=tp_to_end.astype(np.float64),
        fp_to_end=(end + 1 - tp_to_end).astype(np.float64), fp_before=(start - tp_before).astype(np.float64),
        n_pos=n_pos, n_neg=n - n_pos,
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

"""Quality measures of a split (LD, LPD, rLD, DCP, ED, FZ, ...) and per-label counts per part."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from nlpkit.errors import DataError
from nlpkit.split.matrix import as_csr, label_pairs


def _part_counts(m: sp.csr_matrix, assignment: np.ndarray, n_parts: int) -> np.ndarray:
    """(n_parts, n_columns) positives per part, rows with part -1 ignored."""
    keep = assignment >= 0
    onehot = sp.csr_matrix(
        (np.ones(int(keep.sum())), (assignment[keep], np.flatnonzero(keep))), shape=(n_parts, m.shape[0])
    )
    return np.asarray((onehot @ m).todense())


def _distribution(pos_part: np.ndarray, size_part: np.ndarray, pos_all: np.ndarray, n: int) -> float:
    """Katakis/Sechidis LD over columns: mean over columns and parts of |pos/neg - Pos/Neg|."""
    if pos_all.size == 0:
        return 0.0
    # a part (or the data set) holding only positives has no negatives: count one, as optisplit
    # does, rather than dividing by zero as skmultilearn does
    neg_part = np.maximum(size_part[:, None] - pos_part, 1)
    neg_all = np.maximum(n - pos_all, 1)
    return float(np.mean(np.abs(pos_part / neg_part - (pos_all / neg_all)[None, :])))


def split_quality(y, assignment, n_parts: int | None = None, sizes: Sequence[int] | None = None) -> dict:
    """Quality measures of a split (Sechidis et al. 2011; Szymanski & Kajdanowicz 2017;
    Tiittanen, Holm & Toronen 2022). Only labels (pairs) present in ``y`` count; rows with part
    -1 are ignored; lower is better for every measure.

    * ``LD``: label distribution, mean over labels and parts of ``|s/(|S|-s) - d/(|D|-d)|``
      (positive/negative ratio of the part vs the whole; a zero negative count is read as 1).
    * ``LPD``: the same over co-occurring label pairs ``a < b`` (scikit-multilearn's order-2
      version also mixes in single labels as pairs ``(a, a)``; here pairs only).
    * ``rLD``: relative label distribution (Tiittanen et al.), mean of ``|p_part - p| / p`` where
      ``p`` is the fraction of documents carrying the label.
    * ``DCP``: mean over labels of ``max_part(s/d - |S|/|D|)``: the largest excess share of a
      label's documents in one part (Tiittanen et al.'s DCP, generalised to unequal parts).
    * ``ED``: examples distribution, mean over parts of ``| |S| - requested |``.
    * ``FZ``: number of parts missing at least one label (the paper's definition);
      ``FLZ``: number of (part, label) pairs without a positive;
      ``FLZ_avoidable``: the same restricted to labels with at least ``n_parts`` documents
      (``iterative_split`` makes it 0 whenever the quotas allow).
    * ``FZLC``: number of parts missing at least one label pair; ``FLPZ``: (part, pair) pairs
      without a positive.

    Parameters
    ----------
    y : label matrix (n_docs, n_labels), dense or sparse
    assignment : int array (n_docs,), part per row (-1: in no part)
    n_parts : number of parts (default: ``max(assignment) + 1``)
    sizes : requested document count per part (default: equal parts), for ED

    Returns
    -------
    dict of measure name -> number, plus ``sizes`` (obtained) and ``size_error_max``.
    """
    y = as_csr(y)
    assignment = np.asarray(assignment, dtype=np.int64)
    if assignment.shape != (y.shape[0],):
        raise DataError(f"assignment has shape {assignment.shape}, expected ({y.shape[0]},).")
    p = int(assignment.max()) + 1 if n_parts is None else int(n_parts)
    keep = assignment >= 0
    n = int(keep.sum())
    got = np.bincount(assignment[keep], minlength=p)
    want = np.asarray(sizes, dtype=float) if sizes is not None else np.full(p, n / p)

    pos = _part_counts(y, assignment, p)
    pos_all = pos.sum(axis=0)
    present = pos_all > 0
    pos, pos_all = pos[:, present], pos_all[present]
    pz, _ = label_pairs(y[keep])
    ppos = _part_counts(pz, assignment[keep], p)
    ppos_all = ppos.sum(axis=0)

    size_part = got.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac_part = np.where(size_part[:, None] > 0, pos / np.maximum(size_part[:, None], 1), 0.0)
    frac_all = pos_all / max(n, 1)
    rld = float(np.mean(np.abs(frac_part - frac_all) / frac_all)) if pos_all.size else 0.0
    dcp = float(np.mean(np.max(pos / pos_all - (size_part / max(n, 1))[:, None], axis=0))) if pos_all.size else 0.0
    zero = pos == 0
    avoidable = pos_all >= p
    return {
        "LD": _distribution(pos, size_part, pos_all, n),
        "LPD": _distribution(ppos, size_part, ppos_all, n),
        "rLD": rld,
        "DCP": dcp,
        "ED": float(np.mean(np.abs(got - want))),
        "FZ": int(zero.any(axis=1).sum()),
        "FLZ": int(zero.sum()),
        "FLZ_avoidable": int(zero[:, avoidable].sum()),
        "FZLC": int((ppos == 0).any(axis=1).sum()) if ppos.size else 0,
        "FLPZ": int((ppos == 0).sum()),
        "sizes": got.tolist(),
        "size_error_max": float(np.max(np.abs(got - want))) if p else 0.0,
    }


def label_table(y, assignment: np.ndarray, n_parts: int) -> np.ndarray:
    """(n_labels, n_parts) document counts per label and part."""
    return _part_counts(as_csr(y), np.asarray(assignment, np.int64), n_parts).T.astype(np.int64)

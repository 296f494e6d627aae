"""The label matrix: a binary CSR copy of any input, its label pairs, and sparse helpers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from nlpkit.errors import DataError


def as_csr(y) -> sp.csr_matrix:
    """A binary CSR copy of ``y`` with sorted column indices; a 1-D ``y`` is a class vector."""
    if sp.issparse(y):
        m = sp.csr_matrix(y, copy=True)
    else:
        arr = np.asarray(y)
        if arr.ndim == 1:
            # single-label classes (any sortable values) -> one-hot columns in sorted class order
            if arr.size == 0:
                return sp.csr_matrix((0, 0), dtype=np.int8)
            _, codes = np.unique(arr, return_inverse=True)
            codes = codes.ravel()
            return sp.csr_matrix(
                (np.ones(arr.size, np.int8), (np.arange(arr.size), codes)),
                shape=(arr.size, int(codes.max()) + 1),
            )
        if arr.ndim != 2:
            raise DataError(f"label matrix has {arr.ndim} dimensions; expected (documents, labels).")
        m = sp.csr_matrix(arr != 0)
    m.sum_duplicates()
    m.eliminate_zeros()
    m.data = np.ones(m.nnz, np.int8)
    m.sort_indices()
    return m


def lexsort(keys: Sequence[np.ndarray]) -> np.ndarray:
    """``np.lexsort(keys)`` (last key primary) by chained stable argsorts, much faster on large
    arrays than np.lexsort."""
    order = np.argsort(keys[0], kind="stable")
    for key in keys[1:]:
        order = order[np.argsort(key[order], kind="stable")]
    return order


def gather_rows(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of the given CSR rows, and for each one its position in ``rows``."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    total = int(lens.sum())
    owner = np.repeat(np.arange(rows.size), lens)
    offs = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    return indices[np.repeat(starts, lens) + offs], owner


def label_pairs(y) -> tuple[sp.csr_matrix, np.ndarray]:
    """The label-pair indicator matrix of ``y``: one column per co-occurring pair ``a < b``.

    Returns
    -------
    z : csr_matrix (n_docs, n_pairs), 0/1
    pairs : int64 array (n_pairs, 2), the labels of each column, in lexicographic order.
    """
    y = as_csr(y)
    n, L = y.shape
    indptr, indices = y.indptr.astype(np.int64), y.indices.astype(np.int64)
    row_len = np.diff(indptr)
    row_of = np.repeat(np.arange(n), row_len)
    # for entry p of a row ending at e, pair it with the entries p+1 .. e-1 of the same row
    later = indptr[row_of + 1] - np.arange(indptr[-1]) - 1
    first = np.repeat(np.arange(indptr[-1]), later)
    offs = np.arange(int(later.sum())) - np.repeat(np.cumsum(later) - later, later)
    second = first + 1 + offs
    keys = indices[first] * L + indices[second]
    uniq, col = np.unique(keys, return_inverse=True)
    rows = row_of[first]
    z = sp.csr_matrix((np.ones(keys.size, np.int8), (rows, col.ravel())), shape=(n, uniq.size))
    z.sort_indices()
    return z, np.stack([uniq // L, uniq % L], axis=1) if uniq.size else np.zeros((0, 2), np.int64)


def rare_labels(y, n_parts: int) -> np.ndarray:
    """Indices of labels that have at least one but fewer than ``n_parts`` documents.

    These cannot appear in every part; the CLI lists them in a warning.
    """
    counts = np.asarray(as_csr(y).sum(axis=0)).ravel()
    return np.flatnonzero((counts > 0) & (counts < n_parts))

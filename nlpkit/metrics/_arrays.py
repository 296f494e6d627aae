"""Input checks and conversions shared by the metrics layer (label matrices, score matrices)."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from nlpkit.errors import NlpkitError


def as_label_matrix(y, *, name: str = "y_true") -> np.ndarray:
    """A dense boolean (n_docs, n_labels) matrix from a csr/dense 0/1 matrix."""
    arr = y.toarray() if sparse.issparse(y) else np.asarray(y)
    if arr.ndim != 2:
        raise NlpkitError(
            f"{name} must be a 2-D (documents x labels) 0/1 matrix, got shape {arr.shape}; "
            "one-hot encode single-label targets"
        )
    if arr.dtype != bool:
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise NlpkitError(
                f"{name} must contain only 0/1, found {arr[row, col].item()!r} at row {row}, column {col}"
            )
    return arr.astype(bool, copy=False)


def as_label_csr(y, *, name: str = "y_true") -> sparse.csr_matrix:
    """A float64 csr (n_docs, n_labels) 0/1 matrix; checks values like ``as_label_matrix``."""
    if sparse.issparse(y):
        m = sparse.csr_matrix(y, dtype=np.float64)
        if m.ndim != 2:
            raise NlpkitError(f"{name} must be a 2-D (documents x labels) 0/1 matrix")
        data = m.data
        if ((data != 0) & (data != 1)).any():
            raise NlpkitError(f"{name} must contain only 0/1 values")
        m.eliminate_zeros()
        return m
    return sparse.csr_matrix(as_label_matrix(y, name=name), dtype=np.float64)


def as_score_matrix(scores, shape: tuple[int, int] | None = None, *, name: str = "scores") -> np.ndarray:
    """A finite float64 (n_docs, n_labels) matrix, optionally checked against ``shape``."""
    arr = scores.toarray() if sparse.issparse(scores) else np.asarray(scores)
    if arr.ndim != 2:
        raise NlpkitError(f"{name} must be a 2-D (documents x labels) matrix, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise NlpkitError(
            f"{name} has shape {arr.shape} but the labels have shape {tuple(shape)}; "
            "both must be (documents x labels) in the same label order"
        )
    try:
        arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError):
        raise NlpkitError(f"{name} must be numeric, got dtype {arr.dtype}") from None
    if not np.isfinite(arr).all():
        row, col = np.argwhere(~np.isfinite(arr))[0]
        raise NlpkitError(
            f"{name} contains a non-finite value at row {row}, column {col}; check the model output"
        )
    return arr


def check_same_shape(a_shape, b_shape, a_name: str, b_name: str) -> None:
    if tuple(a_shape) != tuple(b_shape):
        raise NlpkitError(
            f"{b_name} has shape {tuple(b_shape)} but {a_name} has shape {tuple(a_shape)}; "
            "they must be (documents x labels) in the same document and label order"
        )


def safe_divide(num, den) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0`` (scikit-learn's ``zero_division=0``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    np.divide(num, den, out=out, where=den != 0)
    return out

"""Writing a :class:`Dataset` as canonical JSONL: the bytes depend only on its content."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from nlpkit._io import atomic_write_text
from nlpkit.data.dataset import JSON_ENCODER, Dataset, extra_names, without_gc
from nlpkit.errors import DataError


def json_value(v: Any) -> Any:
    """Make an extra-column value JSON-serialisable (numpy scalars/arrays, NaN, timestamps)."""
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, np.generic):
        return json_value(v.item())
    if isinstance(v, np.ndarray):
        return [json_value(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    if type(v).__name__ in ("NAType", "NaTType"):  # pandas' missing values
        return None
    if hasattr(v, "isoformat"):  # datetime, date, pandas Timestamp
        return v.isoformat()
    return str(v)


def _dataset_lines(ds: Dataset) -> Iterator[str]:
    extra_cols: list[str] = []
    extra_values: list[list] = []
    if ds.extra is not None:
        if len(ds.extra) != len(ds):
            raise DataError(
                f"dataset has {len(ds)} documents but {len(ds.extra)} rows of extra columns; subset both together"
            )
        extra_values = [ds.extra[c].tolist() for c in ds.extra.columns]
        extra_cols = extra_names([str(c) for c in ds.extra.columns])
    for i, (doc_id, text, labels) in enumerate(zip(ds.ids, ds.texts, ds.label_lists())):
        doc_id = doc_id if type(doc_id) is str else str(doc_id)
        rec: dict[str, Any] = {"id": doc_id, "text": text, "labels": labels}
        for col, values in zip(extra_cols, extra_values):
            rec[col] = json_value(values[i])
        yield JSON_ENCODER.encode(rec) + "\n"


@without_gc
def write_dataset(ds: Dataset, path) -> None:
    """Write ``ds`` as canonical JSONL (``id``, ``text``, ``labels``, then extra columns), atomically.

    The bytes depend only on the dataset's content, so the same dataset always gives the same file.
    """
    try:
        atomic_write_text(path, _dataset_lines(ds))
    except UnicodeEncodeError:
        # The readers reject lone surrogates; a Dataset built in Python may still hold one.
        bad = next(i for i, line in enumerate(_dataset_lines(ds)) if not _encodable(line))
        where = f" of {ds.source}" if ds.source else ""
        raise DataError(
            f"document '{ds.ids[bad]}' (position {bad}){where} holds a lone surrogate (e.g. '\\ud800'),"
            f" which cannot be written as UTF-8; replace it with the character meant or remove it"
        ) from None


def _encodable(line: str) -> bool:
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

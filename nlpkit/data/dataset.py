"""The in-memory dataset: :class:`Dataset`, the :class:`DatasetOptions` that say how to read one
(validated by :func:`check_options`), and :class:`DataWarning`.

A Dataset is documents (ids, texts), their labels as a sparse 0/1 matrix over a sorted label space,
and the columns of the file that were not used. Every reader produces one; every model consumes one.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import gc
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from nlpkit.errors import ConfigError, DataError

if TYPE_CHECKING:  # pandas is imported lazily: `nlpkit --help` must stay fast
    import pandas

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet", "fasttext")
TASKS = ("single", "multi")
# Label values read as missing in every format: what exports write for a missing value. Not
# pandas' whole list: "NA", "None" or "N/A" can be real class names. An empty cell is always
# missing. Texts are kept as written ("null" can be a document).
NA_VALUES = ("", "NaN", "nan", "null", "NULL")
_CANONICAL_KEYS = ("id", "text", "labels")
# json.dumps(..., ensure_ascii=False) builds a new encoder per call; reuse one (same output).
JSON_ENCODER = json.JSONEncoder(ensure_ascii=False)


def without_gc(func):
    """Run ``func`` with the cyclic garbage collector paused.

    Building millions of small dicts/lists (one per row) keeps tripping CPython's allocation-count
    GC thresholds, and each collection rescans every container built so far (docs/benchmarks.md,
    "Shared core"). Nothing here builds reference cycles, so pausing it is safe; the previous state
    is restored.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return wrapper


@dataclass(frozen=True)
class DatasetOptions:
    """How to read a dataset file; every field has a sensible default (see docs/architecture.md)."""

    format: str | None = None  # csv|tsv|jsonl|json|parquet|fasttext; None = from extension
    text_cols: tuple[str, ...] | None = None  # None = "text"
    label_col: str | None = None  # None = "labels", else "label"
    label_cols: tuple[str, ...] = ()  # several 0/1 columns, one per label
    id_col: str | None = None  # None = "id" if present, else row numbers "0","1",...
    label_sep: str | None = None  # split a delimited label string
    task: str | None = None  # "single" | "multi" | None (infer)
    encoding: str = "utf-8"
    drop_empty: bool = False  # drop rows with empty text / missing label instead of failing
    label_prefix: str = "__label__"  # fastText label prefix
    labels_optional: bool = False  # a file with no label column (or unlabelled fastText) reads with 0 labels
    na_values: tuple[str, ...] = NA_VALUES  # label values read as missing ("" always is); texts are kept


class DataWarning(UserWarning):
    """Something in the input a user should check, that is not an error (e.g. a --label-sep found
    in no label). Issued with :func:`warnings.warn`; the CLI shows each on stderr once."""


@dataclass
class Dataset:
    """Documents, their labels as a sparse 0/1 matrix, and the original columns we did not use."""

    ids: list[str]
    texts: list[str]
    y: sp.csr_matrix  # (n_docs, n_labels), uint8, 0/1
    label_names: list[str]  # column order of y; sorted, deterministic
    task: str  # "single" | "multi"
    extra: pandas.DataFrame | None = None
    source: str | None = None
    n_dropped: int = 0
    # True when the file had no id column and ids are row numbers: then two files' ids say
    # nothing about shared documents (nlpkit.split checks overlap only between real ids).
    row_number_ids: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    def subset(self, index: Sequence[int] | np.ndarray) -> Dataset:
        """Rows ``index`` (positions, or a boolean mask), in that order, same label space."""
        idx = np.asarray(index)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        extra = None
        if self.extra is not None:
            extra = self.extra.iloc[idx].reset_index(drop=True)
        return Dataset(
            ids=[self.ids[i] for i in idx],
            texts=[self.texts[i] for i in idx],
            y=_as_csr(self.y[idx]),
            label_names=list(self.label_names),
            task=self.task,
            extra=extra,
            source=self.source,
            n_dropped=0,
            row_number_ids=self.row_number_ids,
        )

    def with_label_names(self, names: Sequence[str]) -> Dataset:
        """The same documents with ``y`` re-indexed onto ``names`` (which must hold every present label)."""
        names = [str(n) for n in names]
        if len(set(names)) != len(names):
            dup = next(n for n, c in Counter(names).items() if c > 1)
            raise DataError(f"label names contain '{dup}' twice; give each label once")
        if names == self.label_names:
            return self
        position = {n: i for i, n in enumerate(names)}
        counts = np.asarray(self.y.sum(axis=0)).ravel()
        missing = [n for n, c in zip(self.label_names, counts) if c > 0 and n not in position]
        if missing:
            where = f" in {self.source}" if self.source else ""
            raise DataError(
                f"label '{missing[0]}'{where} is not in the new label space"
                f" ({len(missing)} such label(s)); add it to the label names"
            )
        mapping = np.array([position.get(n, -1) for n in self.label_names], dtype=np.int64)
        coo = sp.coo_matrix(self.y)
        y = build_y(coo.row, mapping[coo.col], len(self), len(names))
        return Dataset(
            ids=self.ids,
            texts=self.texts,
            y=y,
            label_names=names,
            task=self.task,
            extra=self.extra,
            source=self.source,
            n_dropped=self.n_dropped,
            row_number_ids=self.row_number_ids,
        )

    @without_gc
    def label_lists(self) -> list[list[str]]:
        """Each document's labels as names, in label-space order."""
        y = self.y if isinstance(self.y, sp.csr_matrix) else sp.csr_matrix(self.y)
        if not y.has_sorted_indices:
            y = y.copy()
            y.sort_indices()
        names = self.label_names
        cols = [names[j] for j in y.indices.tolist()]
        bounds = y.indptr.tolist()
        return [cols[bounds[i] : bounds[i + 1]] for i in range(y.shape[0])]

    @without_gc
    def fingerprint(self) -> str:
        """sha256 over ids, texts and label names, in document order (independent of label space)."""
        h = hashlib.sha256()
        encode = JSON_ENCODER.encode
        lists = self.label_lists()
        chunk: list[str] = []
        for i, (doc_id, text) in enumerate(zip(self.ids, self.texts)):
            labels = lists[i]
            doc_id = doc_id if type(doc_id) is str else str(doc_id)  # ids are strings, even if built by hand
            chunk.append(encode([doc_id, text, labels if len(labels) < 2 else sorted(labels)]))
            if len(chunk) >= 10000:
                h.update(("\n".join(chunk) + "\n").encode("utf-8"))
                chunk = []
        if chunk:
            h.update(("\n".join(chunk) + "\n").encode("utf-8"))
        return h.hexdigest()


def _as_csr(m) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.uint8)
    m.sort_indices()
    return m


def build_y(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """0/1 uint8 CSR from (row, col) pairs; duplicate pairs count once."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    data = np.ones(len(rows), dtype=np.int32)
    y = sp.csr_matrix((data, (rows, cols)), shape=(n_rows, n_cols))
    y.sum_duplicates()
    y.data[:] = 1
    y = y.astype(np.uint8)
    y.sort_indices()
    return y


def check_options(options: DatasetOptions) -> DatasetOptions:
    """Reject contradictory options (ConfigError); return them normalised."""
    # A bare string where a tuple is expected would otherwise be read letter by letter.
    if isinstance(options.text_cols, str):
        options = dataclasses.replace(options, text_cols=(options.text_cols,))
    if isinstance(options.label_cols, str):
        options = dataclasses.replace(options, label_cols=(options.label_cols,))
    if options.format is not None:
        options = dataclasses.replace(options, format=options.format.lower())
    if options.task is not None:
        options = dataclasses.replace(options, task=options.task.lower())
    if options.format is not None and options.format not in FORMATS:
        raise ConfigError(f"unknown format '{options.format}'; use one of: {', '.join(FORMATS)}")
    if options.task is not None and options.task not in TASKS:
        raise ConfigError(f"unknown task '{options.task}'; use 'single' or 'multi'")
    if options.label_cols and options.label_col:
        raise ConfigError("--label-col and --label-cols cannot be combined; use one label layout")
    if options.label_cols and options.label_sep:
        raise ConfigError("--label-sep applies to --label-col, not to 0/1 --label-cols; drop --label-sep")
    if options.label_sep == "":
        raise ConfigError("--label-sep is empty; give the separator, e.g. --label-sep '|'")
    if options.text_cols is not None and len(options.text_cols) == 0:
        raise ConfigError("no text column given; pass --text-col NAME")
    try:
        codecs.lookup(options.encoding)
    except LookupError:
        raise ConfigError(f"unknown encoding '{options.encoding}'; use e.g. utf-8 or latin-1") from None
    if not options.label_prefix:
        raise ConfigError("the fastText label prefix is empty; use e.g. '__label__'")
    na_values = options.na_values
    if isinstance(na_values, str):  # "NaN,null" as on the command line
        na_values = na_values.split(",")
    if not isinstance(na_values, (tuple, list, set, frozenset)) or not all(isinstance(v, str) for v in na_values):
        raise ConfigError(
            f"--na-values must be strings (e.g. --na-values 'NaN,null'); got {options.na_values!r}"
        )
    na_values = tuple(dict.fromkeys(v.strip() for v in na_values))
    if na_values != options.na_values:
        options = dataclasses.replace(options, na_values=na_values)
    return options


def missing_markers(options: DatasetOptions) -> frozenset[str]:
    """The label values read as missing (stripped): ``options.na_values`` and the empty string."""
    return frozenset(options.na_values) | {""}


def extra_names(columns: list[str]) -> list[str]:
    """Extra column names as written: one named id/text/labels (e.g. "text" when --text-col body
    was used) becomes "text_original", so it neither clobbers nor is lost."""
    taken = set(_CANONICAL_KEYS) | set(columns)
    names = []
    for col in columns:
        name = col
        if col in _CANONICAL_KEYS:
            name = f"{col}_original"
            while name in taken:
                name += "_"
            taken.add(name)
        names.append(name)
    return names


def join_datasets(*parts: Dataset) -> Dataset:
    """One Dataset holding ``parts`` in order (same label space; extra columns are not kept)."""
    first = parts[0]
    return Dataset(ids=[i for p in parts for i in p.ids], texts=[t for p in parts for t in p.texts],
                   y=sp.vstack([p.y for p in parts]).tocsr(), label_names=list(first.label_names),
                   task=first.task, extra=None, source=first.source,
                   row_number_ids=all(p.row_number_ids for p in parts))


def dropped_note(ds: Dataset) -> str | None:
    """One line saying how many rows ``--drop-empty`` dropped from ``ds`` (None when none were)."""
    if not ds.n_dropped:
        return None
    total = len(ds) + ds.n_dropped
    return f"--drop-empty dropped {ds.n_dropped} of {total} rows of {ds.source} (empty text or no label)"

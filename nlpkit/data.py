"""The dataset layer: the only code that reads and writes user datasets and split folders.

Every reader turns a file into the same in-memory table (column name -> Python values, plus a way
to say where row ``i`` came from: "line N" or "row N"), and one parameterised function turns that
table into a :class:`Dataset`. Problems in the input raise :class:`~nlpkit.errors.DataError` with
one line naming the file, the line/row and column, and the fix.
"""

from __future__ import annotations

import codecs
import dataclasses
import difflib
import functools
import gc
import gzip
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from nlpkit._io import atomic_write_text, is_full_disk, naming, temp_dir_beside
from nlpkit.errors import ConfigError, DataError

if TYPE_CHECKING:  # pandas is imported lazily: `nlpkit --help` must stay fast
    import pandas

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet", "fasttext")
TASKS = ("single", "multi")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "fasttext",
    ".ft": "fasttext",
}
# Separators we look for when a label column seems to hold several labels in one string.
_SEP_CANDIDATES = ("|", ";", ",")
# Separators suggested when --label-sep occurs in no label ("/" too: "tech/news"; never an error,
# since single labels like "Sci/Tech" hold it).
_LABEL_SEP_ALTERNATIVES = ("|", ";", ",", "/")
# Label values read as missing in every format: what exports write for a missing value. Not
# pandas' whole list: "NA", "None" or "N/A" can be real class names. An empty cell is always
# missing. Texts are kept as written ("null" can be a document).
NA_VALUES = ("", "NaN", "nan", "null", "NULL")
_CANONICAL_KEYS = ("id", "text", "labels")
# json.dumps(..., ensure_ascii=False) builds a new encoder per call; reuse one (same output).
_ENCODER = json.JSONEncoder(ensure_ascii=False)
_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}


def _without_gc(func):
    """Run ``func`` with the cyclic garbage collector paused.

    Building millions of small dicts/lists (one per row) keeps tripping CPython's allocation-count
    GC thresholds, and each collection rescans every container built so far: reading 1M JSONL rows
    took 2.6x the CPU time with the collector on (10.3 s vs 3.9 s measured). Nothing here builds
    reference cycles, so pausing it is safe; the previous state is restored.
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


# --------------------------------------------------------------------------------------------
# Options and the Dataset
# --------------------------------------------------------------------------------------------


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
        y = _build_y(coo.row, mapping[coo.col], len(self), len(names))
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

    @_without_gc
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

    @_without_gc
    def fingerprint(self) -> str:
        """sha256 over ids, texts and label names, in document order (independent of label space)."""
        h = hashlib.sha256()
        encode = _ENCODER.encode
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


def _build_y(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
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


# --------------------------------------------------------------------------------------------
# Reading: file -> table
# --------------------------------------------------------------------------------------------


@dataclass
class _Table:
    """What every reader produces: columns of Python values and where each row came from."""

    columns: list[str]
    n_rows: int
    get: Callable[[str], list]  # column -> list of values (None where absent)
    where: Callable[[int], str]  # row index -> "line 5" / "row 5"


def _line_where(lines: Sequence[int]) -> Callable[[int], str]:
    return lambda i: f"line {lines[i]}"


def _row_where(i: int) -> str:
    return f"row {i + 1}"


def dataset_suffix(path) -> str:
    """The extension that names a file's format, lower-case: ``.jsonl`` for ``x.jsonl`` and ``x.jsonl.gz``."""
    path = Path(path)
    if path.suffix.lower() == ".gz":
        return Path(path.stem).suffix.lower()
    return path.suffix.lower()


def _resolve_format(path: Path, options: DatasetOptions, text: Callable[[], str]) -> str:
    if options.format:
        return options.format
    fmt = _EXTENSIONS.get(dataset_suffix(path))
    if fmt is None:
        shown = "".join(path.suffixes[-2:]) if path.suffix.lower() == ".gz" else path.suffix
        raise DataError(
            f"cannot tell the format of {path} from its extension '{shown}';"
            f" pass --format ({', '.join(FORMATS)})"
        )
    if fmt == "fasttext":
        first = next((ln for ln in text().split("\n") if ln.strip()), "")
        if not first.lstrip().startswith(options.label_prefix):
            raise DataError(
                f"{path} does not look like fastText data (line 1 does not start with"
                f" '{options.label_prefix}'); pass --format (csv, tsv, jsonl, ...)"
            )
    return fmt


# --- the one opener of user files: gzip, byte-order marks, encodings ---------------------------

_GZIP_MAGIC = b"\x1f\x8b"
# Longest first: the UTF-32-LE mark starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# --encoding values (codecs.lookup names) that agree with each mark. "utf-8", the default, agrees
# with every mark: a file that starts with a UTF-16/32 mark cannot be UTF-8 (0xFF/0xFE never are).
_BOM_AGREES = {
    "utf-8": {"utf-8", "utf-8-sig"},
    "utf-16-le": {"utf-8", "utf-16", "utf-16-le"},
    "utf-16-be": {"utf-8", "utf-16", "utf-16-be"},
    "utf-32-le": {"utf-8", "utf-32", "utf-32-le"},
    "utf-32-be": {"utf-8", "utf-32", "utf-32-be"},
}
# Files that are not text, by their first bytes: named when they fail to decode, instead of the
# --encoding hint, which cannot help.
_NOT_TEXT = (
    (b"PK\x03\x04", "a ZIP archive (or an .xlsx/.docx file)", "extract it, or export the data as CSV"),
    (b"PAR1", "a Parquet file", "pass --format parquet"),
    (b"BZh", "bzip2-compressed", "decompress it (bunzip2) or recompress it with gzip, which is read directly"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it (unxz) or recompress it with gzip, which is read directly"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it (unzstd) or recompress it with gzip, which is read directly"),
)


def is_gzip(path) -> bool:
    """Whether ``path`` holds gzip data (by its magic bytes, whatever its name)."""
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def read_bytes(path) -> bytes:
    """The bytes of ``path``; gzip data (known by its magic bytes, whatever the name) is decompressed.

    A truncated or damaged gzip file is a DataError naming the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"cannot read {path}: gzip data ends early: the file is truncated; copy it again") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"cannot read {path}: damaged gzip data ({exc}); copy it again") from None


def read_text_file(path, encoding: str = "utf-8") -> str:
    """The text of ``path`` as every reader of user files decodes it.

    gzip data is decompressed first (:func:`read_bytes`). A byte-order mark (UTF-8, UTF-16 or
    UTF-32, either byte order) sets the encoding and is dropped; an ``encoding`` that contradicts
    it is an error (``utf-8``, the default, never does). A byte that is not ``encoding`` is an
    error naming its offset and line, and what the file looks like when that is not another
    8-bit encoding (UTF-16 without a mark, a ZIP or Parquet file, other compression).
    """
    path = Path(path)
    try:
        asked = codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"unknown encoding '{encoding}'; use e.g. utf-8 or latin-1") from None
    raw = read_bytes(path)
    for bom, bom_encoding in _BOMS:
        if raw.startswith(bom):
            if asked not in _BOM_AGREES[bom_encoding]:
                raise DataError(
                    f"{path} starts with a {bom_encoding.upper()} byte-order mark, but --encoding {encoding}"
                    f" was given; pass --encoding {bom_encoding} (or leave --encoding out)"
                )
            return _decode(path, raw, bom_encoding, skip=len(bom))
    if asked == "utf-8":
        guess = _utf16_guess(raw)
        if guess:  # ASCII in UTF-16/32 decodes as "UTF-8" with a NUL after every character
            raise DataError(
                f"{path} looks like {guess.upper()} text without a byte-order mark (NUL bytes between"
                f" the characters); pass --encoding {guess}"
            )
    return _decode(path, raw, encoding)


def _decode(path: Path, raw: bytes, encoding: str, skip: int = 0) -> str:
    try:
        text = raw[skip:].decode(encoding) if skip else raw.decode(encoding)
    except UnicodeDecodeError as exc:
        start = exc.start + skip
        line = raw[:start].decode(encoding, errors="replace").count("\n") + 1
        if skip:  # the byte-order mark named the encoding: the bytes after it are damaged
            raise DataError(
                f"cannot decode {path} as {encoding} (the encoding its byte-order mark names): bad bytes at"
                f" byte offset {start} (line {line}); the file is damaged: copy it again, or save it again as UTF-8"
            ) from None
        for magic, what, fix in _NOT_TEXT:
            if raw.startswith(magic):
                raise DataError(f"cannot read {path} as text: it is {what}; {fix}") from None
        bad = raw[start : start + 1].hex()
        raise DataError(
            f"cannot decode {path} as {encoding}: byte 0x{bad} at byte offset {start} (line {line});"
            f" pass the file's encoding, e.g. --encoding latin-1"
        ) from None
    return text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not part of the first column name


def _utf16_guess(raw: bytes) -> str | None:
    """'utf-16-le' etc. when the first bytes have the NULs of ASCII text in UTF-16/32 without a mark."""
    head = raw[:4096]
    n = len(head) // 4 * 4
    if n < 8 or b"\x00" not in head:
        return None
    share = [head[i:n:4].count(0) / (n // 4) for i in range(4)]  # NUL share at each position mod 4
    if min(share[1:]) > 0.9 and share[0] < 0.5:
        return "utf-32-le"
    if min(share[:3]) > 0.9 and share[3] < 0.5:
        return "utf-32-be"
    if share[1] + share[3] > 0.8 and share[0] + share[2] < 0.2:
        return "utf-16-le"
    if share[0] + share[2] > 0.8 and share[1] + share[3] < 0.2:
        return "utf-16-be"
    return None


# A \uD800-\uDFFF escape that is not half of a high+low pair decodes to a lone surrogate: a str
# that cannot be encoded as UTF-8, so writing a split or predictions would fail on it. An escape
# counts only after an even number of backslashes ("\\ud800" is a backslash, then text).
_SURROGATE_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u([dD][89a-fA-F][0-9a-fA-F]{2})")
_LOW_SURROGATE_ESCAPE = re.compile(r"\\u[dD][c-fC-F][0-9a-fA-F]{2}")
# Deepest nesting of lists/objects we accept in a value. json.loads and json.dumps recurse once
# per level, on top of the frames already on the stack, so values near Python's recursion limit
# (1000) parse but cannot be written back; real data stays far below this.
MAX_NESTING = 100


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _check_surrogates(path: Path, text: str) -> None:
    """Reject JSON text with a lone surrogate escape (e.g. ``"\\ud800"``), naming line and column."""
    if "\\u" not in text:
        return
    paired_until = -1  # end of the low half of the last valid pair
    for m in _SURROGATE_ESCAPE.finditer(text):
        start = m.start(1) - 2
        if start < paired_until:
            continue
        if m.group(1)[1] in "89abAB" and _LOW_SURROGATE_ESCAPE.match(text, m.end()):
            paired_until = m.end() + 6
            continue
        line, col = _position(text, start)
        raise DataError(
            f"{path}:{line}:{col}: '\\u{m.group(1)}' is a lone surrogate escape, not a character,"
            f" and cannot be written as UTF-8; replace it with the character meant or remove it"
        )


def _depth_offset(text: str, limit: int) -> int | None:
    """Offset of the first ``[`` or ``{`` nested deeper than ``limit`` in JSON ``text`` (None: none)."""
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return i
        elif ch in "]}":
            depth -= 1
    return None


def _too_deep(path: Path, text: str, base_line: int = 1) -> DataError:
    """The error for JSON that json.loads could not parse for its nesting depth (RecursionError)."""
    offset = _depth_offset(text, MAX_NESTING)
    if offset is None:  # cannot happen while MAX_NESTING is far below the recursion limit
        where, line = f"{path}:{base_line}", base_line
    else:
        line, col = _position(text, offset)
        line += base_line - 1
        where = f"{path}:{line}:{col}"
    return DataError(
        f"{where}: JSON nested deeper than {MAX_NESTING} levels; flatten that value or remove it from line {line}"
    )


def _nested_deeper(value: Any, limit: int) -> bool:
    """Whether lists/dicts in ``value`` nest deeper than ``limit`` levels (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        for child in v.values() if isinstance(v, dict) else v:
            if isinstance(child, (list, dict)):
                stack.append((child, depth + 1))
    return False


def _read_jsonl(path: Path, text: str) -> _Table:
    # Split on "\n" only: JSON strings may hold U+2028 etc. raw, which str.splitlines would cut.
    _check_surrogates(path, text)
    numbered = [(n, ln) for n, ln in enumerate(text.split("\n"), start=1) if ln.strip()]
    lines = [n for n, _ in numbered]
    bodies = [ln for _, ln in numbered]
    del numbered
    records = None
    # Fast path: one json.loads over "[line,\nline,...]" (half the CPU of a call per line). It is
    # trusted only when every line is one {...} and we get one object per line; else we parse line
    # by line, which also locates the error. The "\n" joint stops a string from running across
    # lines (strict JSON forbids raw newlines in strings), so two lines can only merge through
    # unbalanced brackets, which would need a third, compensating bad line to keep the count.
    if all(b.lstrip().startswith("{") and b.rstrip().endswith("}") for b in bodies):
        try:
            parsed = json.loads("[" + ",\n".join(bodies) + "]")
        except (json.JSONDecodeError, RecursionError):  # the line-by-line pass names the line
            parsed = None
        if parsed is not None and len(parsed) == len(bodies) and all(type(r) is dict for r in parsed):
            records = parsed
    if records is None:
        records = []
        for lineno, line in zip(lines, bodies):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{lineno}:{exc.colno}: malformed JSON ({exc.msg}); fix or remove line {lineno}"
                ) from None
            except RecursionError:
                raise _too_deep(path, line, lineno) from None
            if not isinstance(obj, dict):
                raise DataError(
                    f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__};"
                    f' write one {{"text": ..., "labels": ...}} object per line'
                )
            records.append(obj)
    return _records_table(records, _line_where(lines))


def _read_json(path: Path, text: str) -> _Table:
    _check_surrogates(path, text)
    try:
        obj = json.loads(text)
    except RecursionError:
        raise _too_deep(path, text) from None
    except json.JSONDecodeError as exc:
        # One object per line in a .json file is JSON Lines: json.loads stops at line 2 with "Extra data".
        jsonl = exc.msg == "Extra data" and exc.colno == 1
        fix = "it looks like JSON Lines: pass --format jsonl" if jsonl else "fix the file"
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: malformed JSON ({exc.msg}); {fix}") from None
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        obj = obj["data"]
    if not isinstance(obj, list):
        raise DataError(
            f"{path}: expected a JSON array of records, got {type(obj).__name__};"
            f' use [{{"text": ..., "labels": ...}}, ...] or JSONL (--format jsonl)'
        )
    for i, rec in enumerate(obj):
        if not isinstance(rec, dict):
            raise DataError(
                f"{path}: row {i + 1} is a {type(rec).__name__}, not an object; every record must be an object"
            )
    return _records_table(obj, _row_where)


def _records_table(records: list[dict], where: Callable[[int], str]) -> _Table:
    # Columns in first-seen order; dict.fromkeys over the chained keys runs at C speed.
    from itertools import chain

    columns = list(dict.fromkeys(chain.from_iterable(records)))
    return _Table(
        columns=columns,
        n_rows=len(records),
        get=lambda col: [r.get(col) for r in records],
        where=where,
    )


def _read_delimited(path: Path, text: str, sep: str) -> _Table:
    import io

    import pandas as pd

    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path} has no header and no rows; write a header line such as 'id,text,labels'"
        ) from None
    except pd.errors.ParserError as exc:
        msg = " ".join(str(exc).split())
        raise DataError(
            f"cannot parse {path}: {msg}; check the delimiter and quoting, or pass --format"
        ) from None
    _check_header_names(path, _csv_header(text, sep))
    columns = [str(c) for c in df.columns]
    df.columns = columns
    starts: list[int] | None = None

    def where(i: int) -> str:
        # Line numbers only matter for error messages: find them lazily (quoted fields may span lines).
        nonlocal starts
        if starts is None:
            starts = _csv_row_lines(text, sep)
        return f"line {starts[i]}" if i < len(starts) else f"row {i + 1}"

    return _Table(
        columns=columns,
        n_rows=len(df),
        get=lambda col: df[col].tolist(),
        where=where,
    )


def _lines_of(text: str) -> Iterator[str]:
    """The lines of ``text``, ends kept, one at a time (no copy of the whole text)."""
    start, n = 0, len(text)
    while start < n:
        end = text.find("\n", start)
        end = n if end < 0 else end + 1
        yield text[start:end]
        start = end


def _csv_header(text: str, sep: str) -> list[str]:
    """The header row as written: the first row that is not blank (pandas skips blank lines)."""
    import csv

    csv.field_size_limit(2**31 - 1)
    for row in csv.reader(_lines_of(text), delimiter=sep):
        if row and not (len(row) == 1 and not row[0].strip()):
            return row
    return []


def _check_header_names(path: Path, names: Sequence[str]) -> None:
    """Refuse a column name given twice: pandas would read the second as 'text.1' and the first
    would be used without a word; pyarrow's column lookup would take the first. Unnamed columns
    (a trailing comma) are not names."""
    positions: dict[str, list[int]] = {}
    for pos, name in enumerate(names, start=1):
        if str(name).strip():
            positions.setdefault(str(name), []).append(pos)
    dups = [(name, pos) for name, pos in positions.items() if len(pos) > 1]
    if dups:
        shown = " and ".join(f"'{name}' (columns {', '.join(map(str, pos))})" for name, pos in dups[:3])
        raise DataError(
            f"duplicate column name{'s' if len(dups) > 1 else ''} in the header of {path}: {shown};"
            f" rename one of each so that every column name is unique"
        )


def _csv_row_lines(text: str, sep: str) -> list[int]:
    """First physical line (1-based, header = line 1) of every data row."""
    import csv
    import io

    csv.field_size_limit(2**31 - 1)  # the default (128 KiB) is smaller than pandas accepts
    reader = csv.reader(io.StringIO(text), delimiter=sep)
    starts: list[int] = []
    prev_end = 0
    header_seen = False
    for row in reader:
        start = prev_end + 1
        prev_end = reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):  # pandas skips blank lines
            continue
        if not header_seen:
            header_seen = True
            continue
        starts.append(start)
    return starts


def _read_parquet(path: Path) -> _Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if is_gzip(path):  # Parquet compresses its own columns: a gzip wrapper is read by nothing
        raise DataError(f"{path} is gzip-compressed Parquet; decompress it (gunzip) and read the .parquet file")
    try:
        # pyarrow refuses a file with a column name twice, in words about field references
        _check_header_names(path, [str(c) for c in pq.read_schema(path).names])
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:  # not Parquet, truncated, unreadable
        msg = " ".join(str(exc).split())
        raise DataError(f"cannot read {path} as Parquet: {msg}; check the file or pass --format") from None
    columns = [str(c) for c in table.column_names]
    return _Table(
        columns=columns,
        n_rows=table.num_rows,
        get=lambda col: table.column(columns.index(col)).to_pylist(),
        where=_row_where,
    )


def _read_fasttext(path: Path, text: str, prefix: str, markers: frozenset[str] = frozenset({""})) -> _Table:
    texts: list[str] = []
    labels: list[list[str]] = []
    lines: list[int] = []
    plen = len(prefix)
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        tokens = line.split()
        n = 0
        while n < len(tokens) and tokens[n].startswith(prefix):
            n += 1
        labs = [t[plen:] for t in tokens[:n] if len(t) > plen]
        # Keep the text as written after the leading labels (only the separating spaces go).
        rest = line.lstrip()
        for t in tokens[:n]:
            rest = rest[len(t) :].lstrip()
        if prefix in rest and any(t.startswith(prefix) for t in tokens[n:]):
            # fastText treats a prefixed token anywhere in the line as a label.
            labs += [t[plen:] for t in tokens[n:] if t.startswith(prefix) and len(t) > plen]
            rest = " ".join(t for t in tokens[n:] if not t.startswith(prefix))
        if len(markers) > 1:  # "__label__nan" is a missing label, as in every format
            labs = [lab for lab in labs if lab not in markers]
        texts.append(rest.strip())
        labels.append(labs if labs else None)  # a line without labels is a missing label
        lines.append(lineno)
    cols = {"text": texts, "labels": labels}
    return _Table(
        columns=["text", "labels"], n_rows=len(texts), get=lambda c: cols[c], where=_line_where(lines)
    )


# --------------------------------------------------------------------------------------------
# Reading: table -> Dataset
# --------------------------------------------------------------------------------------------


def _check_options(options: DatasetOptions) -> DatasetOptions:
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


def _markers(options: DatasetOptions) -> frozenset[str]:
    """The label values read as missing (stripped): ``options.na_values`` and the empty string."""
    return frozenset(options.na_values) | {""}


def _require_column(table: _Table, col: str, path: Path, what: str) -> None:
    if col in table.columns:
        return
    available = ", ".join(table.columns) if table.columns else "(none)"
    close = difflib.get_close_matches(col, table.columns, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f"; pass {_flag_for(what)} with one of them"
    if len(table.columns) == 1 and "\t" in table.columns[0]:
        hint = "; the header looks tab-separated: pass --format tsv"
    elif len(table.columns) == 1 and ";" in table.columns[0]:
        hint = "; the header looks ';'-separated: save the file as comma-separated CSV or as TSV"
    raise DataError(f"unknown column '{col}' in {path}; available: {available}{hint}")


def _flag_for(what: str) -> str:
    flags = {"text column": "--text-col", "label column": "--label-col", "label columns": "--label-cols"}
    return flags.get(what, "--id-col")


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


def _scalar_str(v: Any) -> str:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


@_without_gc
def read_dataset(path, options: DatasetOptions = DatasetOptions()) -> Dataset:
    """Read a dataset file into a :class:`Dataset`.

    Parameters
    ----------
    path
        CSV, TSV, JSONL, JSON (array of records), Parquet or fastText file.
    options
        Columns, label layout, task, encoding; see :class:`DatasetOptions`.

    Returns
    -------
    Dataset
        Labels sorted by name; ``task`` inferred ("single" when every row has exactly one label)
        unless ``options.task`` forces it.

    Raises
    ------
    DataError
        Missing file, unknown column, empty text, missing label, bad bytes, malformed line,
        duplicate ids, ... : one line naming the file, line/row and the fix.
    ConfigError
        Options that contradict each other.
    """
    options = _check_options(options)
    path = Path(path)
    if not path.exists():
        raise DataError(f"file not found: {path}; check the path")
    if path.is_dir():
        raise DataError(
            f"{path} is a folder, not a dataset file; pass a file (or use a split folder where one is expected)"
        )

    cache: dict[str, str] = {}

    def text() -> str:
        if "text" not in cache:
            cache["text"] = read_text_file(path, options.encoding)
        return cache["text"]

    fmt = _resolve_format(path, options, text)
    if fmt == "parquet":
        table = _read_parquet(path)
    else:
        if not text().strip():
            raise DataError(f"{path} is empty; give a file with a header/records")
        if fmt == "jsonl":
            table = _read_jsonl(path, text())
        elif fmt == "json":
            table = _read_json(path, text())
        elif fmt == "csv":
            table = _read_delimited(path, text(), ",")
        elif fmt == "tsv":
            table = _read_delimited(path, text(), "\t")
        else:
            table = _read_fasttext(path, text(), options.label_prefix, _markers(options))
    cache.clear()
    if table.n_rows == 0:
        raise DataError(f"{path} has no rows; give a file with at least one record")
    return _table_to_dataset(table, path, options)


def _table_to_dataset(table: _Table, path: Path, options: DatasetOptions) -> Dataset:
    n = table.n_rows
    drop = np.zeros(n, dtype=bool)

    # --- text -------------------------------------------------------------------------------
    text_cols = tuple(options.text_cols) if options.text_cols else ("text",)
    for col in text_cols:
        _require_column(table, col, path, "text column")
    texts = _collect_texts(table, text_cols, path, options, drop)

    # --- labels -----------------------------------------------------------------------------
    if options.label_cols:
        for col in options.label_cols:
            _require_column(table, col, path, "label columns")
        label_lists = _labels_from_indicator_cols(table, options.label_cols, path)
        used_label = list(options.label_cols)
    else:
        label_col = options.label_col
        if label_col is None:
            if "labels" in table.columns and "label" in table.columns:
                label_col = _pick_label_key(table, path)
            elif "labels" in table.columns:
                label_col = "labels"
            elif "label" in table.columns:
                label_col = "label"
            elif options.labels_optional:
                label_col = None
            else:
                available = ", ".join(table.columns)
                raise DataError(
                    f"no label column in {path} (looked for 'labels' and 'label'); available: {available};"
                    f" pass --label-col NAME or --label-cols A,B,..."
                )
        if label_col is None:  # unlabelled data (e.g. for prediction)
            label_lists, used_label = [[] for _ in range(n)], []
        else:
            _require_column(table, label_col, path, "label column")
            label_lists = _labels_from_col(table, label_col, path, options)
            used_label = [label_col]
    # With labels_optional, a file whose rows carry no label at all (no column, fastText lines
    # without __label__, all null) reads as unlabelled; a file with some labels is checked as usual.
    unlabelled = options.labels_optional and all(not labs for labs in label_lists)
    if unlabelled:
        label_lists = [[] for _ in range(n)]

    # Missing labels (None) are errors unless dropped; under single-label, so is an empty set.
    task = options.task
    for i, labs in enumerate(label_lists):
        if drop[i] or unlabelled:
            continue
        if labs is None or (task == "single" and not labs):
            if options.drop_empty:
                drop[i] = True
                continue
            col = ", ".join(used_label)
            raw = table.get(used_label[0])[i] if len(used_label) == 1 else None
            if isinstance(raw, str) and raw.strip() and raw.strip() in _markers(options):  # e.g. "NaN"
                raise DataError(
                    f"missing label at {table.where(i)} of {path} (column '{col}' holds '{raw.strip()}',"
                    f" a missing-value marker); fix the row, pass --drop-empty to skip such rows,"
                    f" or --na-values without '{raw.strip()}' if it is a label"
                )
            raise DataError(
                f"missing label at {table.where(i)} of {path} (column '{col}');"
                f" fix the row or pass --drop-empty to skip such rows"
            )
        if task == "single" and len(labs) > 1 and len(set(labs)) > 1:
            uniq = list(dict.fromkeys(labs))
            shown = ", ".join(f"'{x}'" for x in uniq[:5])
            raise DataError(
                f"{table.where(i)} of {path} has {len(uniq)} labels ({shown}) but the task is single-label;"
                f" drop --task single or fix the row"
            )

    # --- ids --------------------------------------------------------------------------------
    id_col = options.id_col
    if id_col is not None:
        _require_column(table, id_col, path, "id column")
    elif "id" in table.columns and "id" not in text_cols and "id" not in used_label:
        id_col = "id"
    keep = np.flatnonzero(~drop)
    if len(keep) == 0:
        raise DataError(f"every row of {path} was dropped as empty; check --text-col / --label-col")
    if id_col is None:
        ids = [str(i) for i in keep]
    else:
        raw_ids = table.get(id_col)
        ids = [raw_ids[i] for i in keep]
        if not all(type(v) is str and v.strip() for v in ids):  # slow path: numbers, blanks
            ids = []
            for i in keep:
                v = raw_ids[i]
                if _is_missing(v):
                    raise DataError(
                        f"missing id at {table.where(i)} of {path} (column '{id_col}'); give every row an id"
                    )
                if isinstance(v, (list, dict)):
                    raise DataError(
                        f"id at {table.where(i)} of {path} is a {type(v).__name__}; ids must be strings or numbers"
                    )
                ids.append(_scalar_str(v))
        if len(set(ids)) != len(ids):
            first: dict[str, int] = {}
            for pos, doc_id in enumerate(ids):
                if doc_id in first:
                    a, b = table.where(keep[first[doc_id]]), table.where(keep[pos])
                    raise DataError(
                        f"duplicate id '{doc_id}' at {a} and {b} of {path} (column '{id_col}');"
                        f" make the ids unique or pass --id-col with a unique column"
                    )
                first[doc_id] = pos

    texts = [texts[i] for i in keep]
    kept_labels = [label_lists[i] for i in keep]

    # --- label space and y: one pass with a dict, then a permutation to sorted order ---------
    from itertools import chain

    lengths = np.fromiter(map(len, kept_labels), dtype=np.int64, count=len(kept_labels))
    flat = list(chain.from_iterable(kept_labels))
    code: dict[str, int] = {}
    setdefault = code.setdefault
    cols = np.fromiter((setdefault(lab, len(code)) for lab in flat), dtype=np.int64, count=len(flat))
    names = sorted(code)
    order = np.empty(len(names), dtype=np.int64)
    order[[code[name] for name in names]] = np.arange(len(names))
    rows = np.repeat(np.arange(len(kept_labels), dtype=np.int64), lengths)
    y = _build_y(rows, order[cols], len(kept_labels), len(names))
    counts = np.diff(y.indptr)

    if task is None:  # the layout (list, 0/1 columns) does not decide: one label on every row is single
        task = "single" if len(counts) and bool(np.all(counts == 1)) else "multi"

    # --- extra columns ----------------------------------------------------------------------
    used = set(text_cols) | set(used_label) | ({id_col} if id_col else set())
    extra_cols = [c for c in table.columns if c not in used]
    extra = None
    if extra_cols:
        import pandas as pd

        data = {}
        for col, name in zip(extra_cols, _extra_names(extra_cols)):
            values = table.get(col)
            _check_nesting(values, table, col, path)
            data[name] = pd.Series([values[i] for i in keep], dtype=object)
        extra = pd.DataFrame(data)

    return Dataset(
        ids=ids,
        texts=texts,
        y=y,
        label_names=names,
        task=task,
        extra=extra,
        source=str(path),
        n_dropped=int(drop.sum()),
        row_number_ids=id_col is None,
    )


def _check_nesting(values: list, table: _Table, col: str, path: Path) -> None:
    """Refuse a value nested too deeply to write back (see MAX_NESTING)."""
    for i, v in enumerate(values):
        if isinstance(v, (list, dict)) and _nested_deeper(v, MAX_NESTING):
            raise DataError(
                f"value at {table.where(i)} of {path} (column '{col}') is nested deeper than {MAX_NESTING}"
                f" levels; flatten it or remove the column from that row"
            )


def _extra_names(columns: list[str]) -> list[str]:
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


def _pick_label_key(table: _Table, path: Path) -> str:
    """'labels' when a file has both default label keys, unless rows mix them: one row with only
    'labels' and another with only 'label' is a typo to fix, not a missing label on every row of
    the minority key (which --drop-empty would then silently drop)."""
    plural, singular = table.get("labels"), table.get("label")
    only_plural = [i for i in range(table.n_rows) if not _is_missing(plural[i]) and _is_missing(singular[i])]
    only_singular = [i for i in range(table.n_rows) if not _is_missing(singular[i]) and _is_missing(plural[i])]
    if not only_plural or not only_singular:
        return "labels"
    # The key most rows use is the intended one; report the first row of the other.
    if len(only_singular) > len(only_plural):
        odd, usual, rows, n_usual = "labels", "label", only_plural, len(only_singular)
    else:
        odd, usual, rows, n_usual = "label", "labels", only_singular, len(only_plural)
    where = table.where(rows[0])
    more = f" (and {len(rows) - 1} more row(s))" if len(rows) > 1 else ""
    raise DataError(
        f"{where}{more} of {path} has its labels under '{odd}' but {n_usual} other row(s) use '{usual}';"
        f" use one label key throughout (rename '{odd}' to '{usual}' at {where}), or choose one with --label-col {usual}"
    )


def _collect_texts(
    table: _Table, cols: tuple[str, ...], path: Path, options: DatasetOptions, drop: np.ndarray
) -> list[str]:
    columns = [table.get(c) for c in cols]
    if len(cols) == 1:
        values = columns[0]
        # Fast path: every value a non-blank string (the usual case) needs no per-row work.
        if all(type(v) is str for v in values) and all(map(str.strip, values)):
            return values if isinstance(values, list) else list(values)
    texts: list[str] = []
    for i in range(table.n_rows):
        parts = []
        for col, values in zip(cols, columns):
            v = values[i]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                v = ""
            elif not isinstance(v, str):
                if options.drop_empty:
                    drop[i] = True
                    v = ""
                else:
                    raise DataError(
                        f"text at {table.where(i)} of {path} (column '{col}') is not a string"
                        f" (got {type(v).__name__}); fix the row or pass --drop-empty to skip such rows"
                    )
            parts.append(v)
        text = parts[0] if len(parts) == 1 else "\n".join(parts)
        if not text.strip():
            if options.drop_empty:
                drop[i] = True
            else:
                col = ", ".join(cols)
                raise DataError(
                    f"empty text at {table.where(i)} of {path} (column '{col}');"
                    f" fix the row or pass --drop-empty to skip such rows"
                )
        texts.append(text)
    return texts


def _labels_from_col(table: _Table, col: str, path: Path, options: DatasetOptions) -> list[list[str] | None]:
    values = table.get(col)
    sep = options.label_sep
    markers = _markers(options)
    out: list[list[str] | None] = []
    append = out.append
    for i, v in enumerate(values):
        tv = type(v)
        if tv is str and sep is None:  # fast path: one string label
            lab = v.strip()
            append([lab] if lab not in markers else None)
            continue
        if tv is list and all(type(x) is str for x in v):  # fast path: a list of strings
            labs = [x.strip() for x in v]
            if not markers.isdisjoint(labs):
                raise _bad_label_in_list(next(x for x in labs if x in markers), table, i, path, col)
            append(labs)  # duplicates are harmless: y counts each (row, label) once
            continue
        if isinstance(v, np.ndarray):
            v = v.tolist()
        if isinstance(v, (list, tuple)):
            labs = []
            for x in v:
                if (_is_missing(x) or isinstance(x, (bool, np.bool_))
                        or (isinstance(x, str) and x.strip() in markers)):
                    raise _bad_label_in_list(x, table, i, path, col)
                if isinstance(x, (list, dict)):
                    raise DataError(
                        f"label at {table.where(i)} of {path} (column '{col}') holds a {type(x).__name__};"
                        f" labels must be strings or numbers"
                    )
                labs.append(_scalar_str(x))
            append(list(dict.fromkeys(labs)))
        elif _is_missing(v) or (isinstance(v, str) and v.strip() in markers):
            append(None)
        elif isinstance(v, (bool, np.bool_)):
            raise DataError(
                f"label at {table.where(i)} of {path} (column '{col}') is the boolean {str(bool(v)).lower()},"
                f" not a label name; write labels as strings (e.g. \"{str(bool(v)).lower()}\") or numbers"
            )
        elif isinstance(v, dict):
            raise DataError(
                f"label at {table.where(i)} of {path} (column '{col}') is an object;"
                f" labels must be a string, a number or a list"
            )
        elif sep is not None and isinstance(v, str):
            # Empty pieces and markers ("a|NaN") are dropped; a cell left with none is missing.
            labs = [p.strip() for p in v.split(sep)]
            labs = list(dict.fromkeys(p for p in labs if p not in markers))
            append(labs if labs else None)
        else:
            append([_scalar_str(v)])
    if sep is None and options.task != "single":
        _check_not_delimited(values, table, col, path)
    if sep is not None:
        _check_label_sep(values, col, path, sep, markers)
    return out


def _bad_label_in_list(x: Any, table: _Table, i: int, path: Path, col: str) -> DataError:
    """A null, blank, marker or boolean entry in a label list: an error, never a silently dropped
    label (an element of a delimited string is a piece of text, and is dropped instead)."""
    fix = "remove it from the list (an empty list [] is a document without labels)"
    if isinstance(x, (bool, np.bool_)):
        what, fix = f"the boolean {str(bool(x)).lower()}", "write labels as strings or numbers"
    elif isinstance(x, str) and x.strip():
        what = f"the missing-value marker '{x.strip()}'"
        fix += f", or pass --na-values without '{x.strip()}' if it is a label"
    else:
        what = "null" if x is None or isinstance(x, float) else "an empty string"
    return DataError(f"label list at {table.where(i)} of {path} (column '{col}') holds {what}; {fix}")


def _check_label_sep(values: list, col: str, path: Path, sep: str, markers: frozenset[str]) -> None:
    """Warn (DataWarning) when --label-sep occurs in no string label: every label was kept whole,
    which is never what the option was given for; name the separator the labels seem to use."""
    strings = [s for s in (v.strip() for v in values if isinstance(v, str)) if s not in markers]
    if not strings or any(sep in s for s in strings):
        return
    where = f"--label-sep '{sep}' occurs in no label of {path} (column '{col}')"
    hits = {c: sum(1 for s in strings if c in s.strip(c + " ")) for c in _LABEL_SEP_ALTERNATIVES if c != sep}
    several = sum(1 for s in strings if any(c in s.strip(c + " ") for c in hits))  # values that look multi-label
    best = max(hits, key=lambda c: hits[c])
    if hits[best] and 2 * hits[best] > several:
        message = f"{where}, but '{best}' occurs in {hits[best]} of them: did you mean --label-sep '{best}'?"
    else:
        message = f"{where}: every label value was kept whole; check the separator, or drop --label-sep"
    warnings.warn(message, DataWarning, stacklevel=2)


def _check_not_delimited(values: list, table: _Table, col: str, path: Path) -> None:
    """Refuse a string label column that looks like it holds several labels per row."""
    strings = [(i, v) for i, v in enumerate(values) if isinstance(v, str)]
    if len(strings) < 2:
        return
    for sep in _SEP_CANDIDATES:
        hits = [i for i, v in strings if sep in v.strip(sep + " ")]
        # "many rows": at least 2 and at least 5% of the string labels.
        if len(hits) >= 2 and len(hits) >= 0.05 * len(strings):
            first = hits[0]
            more = f" (and {len(hits) - 1} more rows)"
            raise DataError(
                f"label column '{col}' in {path} looks delimited: {table.where(first)} has"
                f" '{values[first]}'{more}; pass --label-sep '{sep}'"
                f" (or --task single if '{sep}' is part of the label names)"
            )


def _labels_from_indicator_cols(table: _Table, cols: tuple[str, ...], path: Path) -> list[list[str] | None]:
    out: list[list[str]] = [[] for _ in range(table.n_rows)]
    for col in cols:
        name = str(col)
        for i, v in enumerate(table.get(col)):
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, bool):
                on = v
            elif isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) and v in (0, 1):
                on = v == 1
            elif isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
                on = v.strip().lower() in _TRUE
            else:
                shown = "empty" if _is_missing(v) else repr(v)
                raise DataError(
                    f"label column '{col}' at {table.where(i)} of {path} holds {shown}, not 0/1;"
                    f" --label-cols expects one 0/1 column per label (write 0 or 1 in every row)"
                )
            if on:
                out[i].append(name)
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _json_value(v: Any) -> Any:
    """Make an extra-column value JSON-serialisable (numpy scalars/arrays, NaN, timestamps)."""
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else v
    if isinstance(v, np.generic):
        return _json_value(v.item())
    if isinstance(v, np.ndarray):
        return [_json_value(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
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
        extra_cols = _extra_names([str(c) for c in ds.extra.columns])
    for i, (doc_id, text, labels) in enumerate(zip(ds.ids, ds.texts, ds.label_lists())):
        doc_id = doc_id if type(doc_id) is str else str(doc_id)
        rec: dict[str, Any] = {"id": doc_id, "text": text, "labels": labels}
        for col, values in zip(extra_cols, extra_values):
            rec[col] = _json_value(values[i])
        yield _ENCODER.encode(rec) + "\n"


@_without_gc
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


def dropped_note(ds: Dataset) -> str | None:
    """One line saying how many rows ``--drop-empty`` dropped from ``ds`` (None when none were)."""
    if not ds.n_dropped:
        return None
    total = len(ds) + ds.n_dropped
    return f"--drop-empty dropped {ds.n_dropped} of {total} rows of {ds.source} (empty text or no label)"


def file_sha256(path) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Split folders
# --------------------------------------------------------------------------------------------

_PART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_FOLD = re.compile(r"^fold\d+$")


@dataclass
class Split:
    """A split folder: ``split.json`` plus one canonical JSONL file per part, in one label space."""

    path: Path
    manifest: dict
    parts: dict[str, Dataset]
    label_names: list[str]
    task: str

    @property
    def train(self) -> Dataset | None:
        return self.parts.get("train")

    @property
    def valid(self) -> Dataset | None:
        return self.parts.get("valid")

    @property
    def test(self) -> Dataset | None:
        return self.parts.get("test")

    @property
    def folds(self) -> list[Dataset]:
        """fold0, fold1, ... in numeric order (empty when the split is not k-fold)."""
        names = sorted((n for n in self.parts if _FOLD.match(n)), key=lambda n: int(n[4:]))
        return [self.parts[n] for n in names]

    @property
    def fingerprint(self) -> str:
        return self.manifest["split_sha256"]

    @property
    def test_fingerprint(self) -> str | None:
        test = self.parts.get("test")
        return test.fingerprint() if test is not None else None


def join_datasets(*parts: Dataset) -> Dataset:
    """One Dataset holding ``parts`` in order (same label space; extra columns are not kept)."""
    first = parts[0]
    return Dataset(ids=[i for p in parts for i in p.ids], texts=[t for p in parts for t in p.texts],
                   y=sp.vstack([p.y for p in parts]).tocsr(), label_names=list(first.label_names),
                   task=first.task, extra=None, source=first.source,
                   row_number_ids=all(p.row_number_ids for p in parts))


def fold_split(split: Split, fold: int) -> Split:
    """Fold ``fold`` of a k-fold split as a train/test split that experiments can run on.

    Without a held-out test part (``nlpkit split --folds K``), fold ``fold`` is the test part and
    the other folds are train (cross-validation: valid is carved from train as usual). With one
    (``--folds K --test-size ...``), fold ``fold`` is valid, the other folds train, and the test
    part stays the test part. The view has its own fingerprint, so runs on different folds are
    never compared with one another.
    """
    folds = split.folds
    if not folds:
        raise ConfigError(f"--fold applies to a k-fold split (made with `nlpkit split --folds K`); "
                          f"{split.path} has parts {', '.join(sorted(split.parts))}.")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < len(folds):
        raise ConfigError(f"--fold {fold} is out of range: {split.path} has folds 0..{len(folds) - 1}.")
    train = join_datasets(*(f for i, f in enumerate(folds) if i != fold))
    held = "valid" if split.test is not None else "test"
    parts = {"train": train, held: folds[fold]}
    old_info = split.manifest.get("parts") or {}
    info = {"train": {"n_docs": len(train), "folds": [f"fold{i}" for i in range(len(folds)) if i != fold]},
            held: old_info.get(f"fold{fold}", {})}
    if split.test is not None:
        parts["test"], info["test"] = split.test, old_info.get("test", {})
    fingerprints = {name: ds.fingerprint() for name, ds in parts.items()}
    manifest = {**split.manifest, "fold": fold, "parts": info,
                "split_sha256": _split_sha256({**fingerprints, "fold": str(fold), "of": split.fingerprint})}
    return Split(path=split.path, manifest=manifest, parts=parts, label_names=list(split.label_names),
                 task=split.task)


def load_experiment_split(path, fold: int | None = None, *, option: str = "--fold") -> Split:
    """The split an experiment runs on: the folder itself, or fold ``fold`` of a k-fold split
    (:func:`fold_split`). A k-fold split without ``fold`` is a ConfigError naming ``option``."""
    split = load_split(path)
    if fold is not None:
        return fold_split(split, fold)
    if split.folds:
        raise ConfigError(f"{path} is a k-fold split: choose a fold with {option} N (0..{len(split.folds) - 1}).")
    return split


def _split_sha256(fingerprints: dict[str, str]) -> str:
    # Part names are included so that swapping train and test changes the hash.
    payload = "\n".join(sorted(f"{name}:{fp}" for name, fp in fingerprints.items()))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def write_split(path, parts: dict[str, Dataset], manifest: dict, overwrite: bool = False) -> Split:
    """Write a split folder atomically and return it.

    Parameters
    ----------
    path
        Output folder; must not exist unless ``overwrite`` (then only a split folder is replaced).
    parts
        Part name -> Dataset ("train", "valid", "test" or "fold0".."foldK-1"); all are re-indexed
        onto the sorted union of their label names.
    manifest
        Anything to record (source, seed, method, ...); merged with label_names, task, parts,
        split_sha256. Written with sorted keys and no timestamps: same input, same bytes.
    overwrite
        Replace an existing split folder.
    """
    path = Path(path)
    if not parts:
        raise DataError("a split needs at least one part; nothing to write")
    for name in parts:
        if not _PART_NAME.match(name):
            raise DataError(f"bad split part name '{name}'; use letters, digits, '-' and '_'")
    _check_output_dir(path, overwrite)

    names = sorted(set().union(*(ds.label_names for ds in parts.values())))
    tasks = {ds.task for ds in parts.values()}
    task = "multi" if "multi" in tasks else "single"
    # dataclasses.replace: never mutate the caller's datasets (with_label_names may return self).
    aligned = {name: dataclasses.replace(ds.with_label_names(names), task=task) for name, ds in parts.items()}

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        # Inside the try: a Ctrl-C right after the folder is made must still remove it.
        tmp = temp_dir_beside(path)
        info: dict[str, dict] = {}
        fingerprints: dict[str, str] = {}
        for name in sorted(aligned):
            ds = aligned[name]
            filename = f"{name}.jsonl"
            write_dataset(ds, tmp / filename)
            fingerprints[name] = ds.fingerprint()
            info[name] = {
                "file": filename,
                "n_docs": len(ds),
                "sha256": file_sha256(tmp / filename),
                "fingerprint": fingerprints[name],
            }
        full = dict(manifest)
        full.update(
            {
                "label_names": names,
                "task": task,
                "parts": info,
                "split_sha256": _split_sha256(fingerprints),
            }
        )
        text = json.dumps(_json_value(full), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (tmp / "split.json").write_text(text, encoding="utf-8", newline="\n")
        _move_into_place(tmp, path, overwrite)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if is_full_disk(exc) and (tmp is None or exc.filename is None or str(exc.filename).startswith(str(tmp))):
            # Name the split folder asked for, not a file in the hidden temporary one.
            raise naming(OSError(exc.errno, exc.strerror), path) from None
        raise
    for name, ds in aligned.items():
        aligned[name] = dataclasses.replace(ds, source=str(path / f"{name}.jsonl"), n_dropped=0)
    return Split(path=path, manifest=json.loads(text), parts=aligned, label_names=names, task=task)


def _check_output_dir(path: Path, overwrite: bool) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if not overwrite:
        raise DataError(f"output folder exists: {path}; choose another --out or pass --overwrite")
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return  # an empty folder holds nothing to lose
    if not path.is_dir() or path.is_symlink() or not (path / "split.json").is_file():
        # Never delete something that is not ours, even with --overwrite.
        raise DataError(
            f"refusing to overwrite {path}: it is not a split folder (no split.json); choose another --out"
        )


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    if not path.exists():
        try:
            os.rename(tmp, path)
            return
        except OSError:
            if not path.exists():
                raise
    # The path exists (now): replace it only with overwrite, keeping the old one until the new is in.
    _check_output_dir(path, overwrite)
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
    os.rmdir(old)
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_split(path) -> Split:
    """Load a split folder written by :func:`write_split` (checked against its manifest)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"split folder not found: {path}; make one with `nlpkit split`")
    if not path.is_dir():
        raise DataError(f"not a split folder: {path} (not a directory); make one with `nlpkit split`")
    manifest_path = path / "split.json"
    if not manifest_path.is_file():
        raise DataError(f"not a split folder: {path} (no split.json); make one with `nlpkit split`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{manifest_path}:{exc.lineno}:{exc.colno}: malformed JSON ({exc.msg}); re-create the split with `nlpkit split --overwrite`"
        ) from None
    except UnicodeDecodeError:
        raise DataError(
            f"{manifest_path} is not UTF-8 text; re-create the split with `nlpkit split --overwrite`"
        ) from None
    part_info = manifest.get("parts") if isinstance(manifest, dict) else None
    names = manifest.get("label_names") if isinstance(manifest, dict) else None
    task = manifest.get("task") if isinstance(manifest, dict) else None
    if not isinstance(part_info, dict) or not isinstance(names, list) or task not in TASKS:
        raise DataError(
            f"{manifest_path} lacks 'parts', 'label_names' or 'task'; re-create the split with `nlpkit split --overwrite`"
        )
    if "train" not in part_info and not any(_FOLD.match(n) for n in part_info):
        raise DataError(
            f"split {path} has no train part (parts: {', '.join(sorted(part_info)) or 'none'});"
            f" re-create it with `nlpkit split`"
        )
    parts: dict[str, Dataset] = {}
    # Parts are written by nlpkit: a label "NaN" in them was read as a label (--na-values '').
    opts = DatasetOptions(format="jsonl", task=task, na_values=())
    for name in sorted(part_info):
        info = part_info[name]
        filename = info.get("file", f"{name}.jsonl") if isinstance(info, dict) else f"{name}.jsonl"
        if not isinstance(filename, str) or Path(filename).name != filename or filename.startswith("."):
            raise DataError(
                f"{manifest_path}: part '{name}' names file {filename!r}, not a plain file name in the folder;"
                f" re-create the split with `nlpkit split --overwrite`"
            )
        part_path = path / filename
        if not part_path.is_file():
            raise DataError(
                f"split part '{name}' listed in {manifest_path} is missing: {part_path};"
                f" re-create the split with `nlpkit split --overwrite`"
            )
        expected = info.get("sha256") if isinstance(info, dict) else None
        if expected and file_sha256(part_path) != expected:
            raise DataError(
                f"split part {part_path} changed after the split was written (sha256 differs from {manifest_path});"
                f" re-create the split with `nlpkit split --overwrite`"
            )
        parts[name] = read_dataset(part_path, opts).with_label_names(names)
    return Split(path=path, manifest=manifest, parts=parts, label_names=list(names), task=task)


# --------------------------------------------------------------------------------------------
# Statistics (`nlpkit inspect`)
# --------------------------------------------------------------------------------------------


def _summary(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {k: 0.0 for k in ("min", "p5", "p50", "p95", "max", "mean")}
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return {
        "min": int(values.min()),
        "p5": float(p5),
        "p50": float(p50),
        "p95": float(p95),
        "max": int(values.max()),
        "mean": round(float(values.mean()), 2),
    }


@_without_gc
def describe(ds: Dataset, top: int = 10, n_examples: int = 3) -> dict:
    """Statistics of a dataset as a JSON-serialisable dict (what `nlpkit inspect` shows).

    Parameters
    ----------
    ds
        The dataset.
    top
        How many labels to list at the head and at the tail of the frequency table.
    n_examples
        How many duplicate-text groups to show.
    """
    n = len(ds)
    counts = np.asarray(ds.y.sum(axis=0)).ravel().astype(np.int64)
    per_doc = np.diff(ds.y.indptr).astype(np.int64)
    freq = [
        {"label": name, "count": int(c), "pct": round(100.0 * c / n, 2) if n else 0.0}
        for name, c in zip(ds.label_names, counts)
    ]
    head = sorted(freq, key=lambda f: (-f["count"], f["label"]))[:top]
    tail = sorted(freq, key=lambda f: (f["count"], f["label"]))[:top]
    cardinality = float(per_doc.mean()) if n else 0.0

    from nlpkit.models.text import count_words

    words = np.fromiter((count_words(t) for t in ds.texts), dtype=np.int64, count=n)
    chars = np.fromiter((len(t) for t in ds.texts), dtype=np.int64, count=n)

    groups: dict[str, list[int]] = {}
    for i, t in enumerate(ds.texts):
        groups.setdefault(t, []).append(i)
    dup_groups = [idx for idx in groups.values() if len(idx) > 1]
    label_lists = ds.label_lists() if dup_groups else []
    conflicting = sum(1 for idx in dup_groups if len({tuple(label_lists[i]) for i in idx}) > 1)
    examples = []
    for idx in dup_groups[:n_examples]:
        text = ds.texts[idx[0]]
        examples.append(
            {
                "text": text if len(text) <= 80 else text[:77] + "...",
                "count": len(idx),
                "ids": [ds.ids[i] for i in idx[:5]],
                "labels": [label_lists[i] for i in idx[:5]],
            }
        )

    return {
        "source": ds.source,
        "n_docs": n,
        "n_labels": ds.n_labels,
        "task": ds.task,
        "n_dropped": ds.n_dropped,
        "label_cardinality": round(cardinality, 4),
        "label_density": round(cardinality / ds.n_labels, 4) if ds.n_labels else 0.0,
        "label_sets": len({tuple(x) for x in ds.label_lists()}) if ds.task == "multi" else ds.n_labels,
        "docs_without_labels": int((per_doc == 0).sum()),
        "label_frequency_head": head,
        "label_frequency_tail": tail,
        "labels_under_2_docs": [f["label"] for f in freq if f["count"] < 2],
        "labels_under_5_docs": [f["label"] for f in freq if f["count"] < 5],
        "text_words": _summary(words),
        "text_chars": _summary(chars),
        "duplicate_texts": {
            "groups": len(dup_groups),
            "docs": int(sum(len(idx) for idx in dup_groups)),
            "extra_copies": int(sum(len(idx) - 1 for idx in dup_groups)),
            "conflicting_labels": conflicting,
            "examples": examples,
        },
    }

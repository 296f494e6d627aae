"""Readers: a dataset file in any of the six formats -> one :class:`Table`.

Every reader turns a file into the same in-memory table (column name -> Python values, plus a way
to say where row ``i`` came from: "line N" or "row N"); :mod:`nlpkit.data.convert` turns that table
into a Dataset. JSON input is guarded against what would parse but could not be written back (lone
surrogate escapes, very deep nesting), and headers against a column name given twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpkit.data.dataset import FORMATS, DatasetOptions, missing_markers
from nlpkit.data.opener import is_gzip, read_text_file
from nlpkit.errors import DataError

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


@dataclass
class Table:
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


def read_table(path: Path, options: DatasetOptions) -> Table:
    """The table of dataset file ``path`` in its format (``options.format`` or its extension).

    ``options`` must have passed :func:`~nlpkit.data.dataset.check_options`. A missing file, a
    folder, an empty file or one without rows is a DataError.
    """
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
            table = _read_fasttext(path, text(), options.label_prefix, missing_markers(options))
    if table.n_rows == 0:
        raise DataError(f"{path} has no rows; give a file with at least one record")
    return table


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


def nested_deeper(value: Any, limit: int) -> bool:
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


def _read_jsonl(path: Path, text: str) -> Table:
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
    return records_table(records, _line_where(lines))


def _read_json(path: Path, text: str) -> Table:
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
    return records_table(obj, _row_where)


def records_table(records: list[dict], where: Callable[[int], str]) -> Table:
    """A table of JSON ``records`` (columns in first-seen order); ``where(i)`` names row i in errors
    (e.g. its line). JSONL and JSON arrays are read through it, and streamed JSONL chunks too."""
    # dict.fromkeys over the chained keys runs at C speed
    from itertools import chain

    columns = list(dict.fromkeys(chain.from_iterable(records)))
    return Table(
        columns=columns,
        n_rows=len(records),
        get=lambda col: [r.get(col) for r in records],
        where=where,
    )


def _read_delimited(path: Path, text: str, sep: str) -> Table:
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

    return Table(
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


def _read_parquet(path: Path) -> Table:
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
    return Table(
        columns=columns,
        n_rows=table.num_rows,
        get=lambda col: table.column(columns.index(col)).to_pylist(),
        where=_row_where,
    )


def _read_fasttext(path: Path, text: str, prefix: str, markers: frozenset[str] = frozenset({""})) -> Table:
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
    return Table(
        columns=["text", "labels"], n_rows=len(texts), get=lambda c: cols[c], where=_line_where(lines)
    )

"""A :class:`Table` -> a :class:`Dataset`, and :func:`read_dataset` (file -> table -> Dataset).

One parameterised function for every format and label layout: the text column(s), the labels (one
string, a delimited string, a list, or one 0/1 column per label), the ids, and the columns left
over. Problems in the input raise :class:`~nlpkit.errors.DataError` with one line naming the file,
the line/row and column, and the fix.
"""

from __future__ import annotations

import difflib
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from nlpkit.data.dataset import (
    Dataset,
    DatasetOptions,
    DataWarning,
    build_y,
    check_options,
    extra_names,
    missing_markers,
    without_gc,
)
from nlpkit.data.readers import MAX_NESTING, Table, nested_deeper, read_table
from nlpkit.errors import DataError

# Separators we look for when a label column seems to hold several labels in one string.
_SEP_CANDIDATES = ("|", ";", ",")
# Separators suggested when --label-sep occurs in no label ("/" too: "tech/news"; never an error,
# since single labels like "Sci/Tech" hold it).
_LABEL_SEP_ALTERNATIVES = ("|", ";", ",", "/")
_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}


@without_gc
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
    options = check_options(options)
    path = Path(path)
    return table_to_dataset(read_table(path, options), path, options)


def _require_column(table: Table, col: str, path: Path, what: str) -> None:
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


def table_to_dataset(table: Table, path: Path, options: DatasetOptions) -> Dataset:
    """The Dataset in ``table`` (read from ``path``; ``options`` checked): texts, labels, ids, extra columns."""
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
            if isinstance(raw, str) and raw.strip() and raw.strip() in missing_markers(options):  # e.g. "NaN"
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
    y = build_y(rows, order[cols], len(kept_labels), len(names))
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
        for col, name in zip(extra_cols, extra_names(extra_cols)):
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


def _check_nesting(values: list, table: Table, col: str, path: Path) -> None:
    """Refuse a value nested too deeply to write back (see MAX_NESTING)."""
    for i, v in enumerate(values):
        if isinstance(v, (list, dict)) and nested_deeper(v, MAX_NESTING):
            raise DataError(
                f"value at {table.where(i)} of {path} (column '{col}') is nested deeper than {MAX_NESTING}"
                f" levels; flatten it or remove the column from that row"
            )


def _pick_label_key(table: Table, path: Path) -> str:
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
    table: Table, cols: tuple[str, ...], path: Path, options: DatasetOptions, drop: np.ndarray
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


def _labels_from_col(table: Table, col: str, path: Path, options: DatasetOptions) -> list[list[str] | None]:
    values = table.get(col)
    sep = options.label_sep
    markers = missing_markers(options)
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


def _bad_label_in_list(x: Any, table: Table, i: int, path: Path, col: str) -> DataError:
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


def _check_not_delimited(values: list, table: Table, col: str, path: Path) -> None:
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


def _labels_from_indicator_cols(table: Table, cols: tuple[str, ...], path: Path) -> list[list[str] | None]:
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

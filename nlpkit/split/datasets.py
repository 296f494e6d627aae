"""Splitting Datasets: one dataset into planned parts, or parts the user already has; the notes
a user should read (rare labels, shared documents, labels missing from train)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from nlpkit.errors import ConfigError, DataError
from nlpkit.split.iterative import iterative_split
from nlpkit.split.matrix import rare_labels
from nlpkit.split.peers import random_split, skmultilearn_split
from nlpkit.split.quality import label_table, split_quality
from nlpkit.split.sizes import plan_parts, resolve_sizes

METHODS = ("iterative", "random", "skmultilearn")


def assign_parts(y, counts: Sequence[int], *, method: str, order: int, seed: int) -> np.ndarray:
    """Part index per row by ``method`` (iterative | random | skmultilearn); counts sum to n."""
    if method == "iterative":
        return iterative_split(y, list(counts), order=order, seed=seed)
    if method == "random":
        return random_split(y, list(counts), seed=seed)
    if method == "skmultilearn":
        return skmultilearn_split(y, list(counts), order=order, seed=seed)
    raise ConfigError(f"unknown method {method!r}; use one of: {', '.join(METHODS)}.")


def split_dataset(ds, *, test_size=0.2, valid_size=None, folds=None, order=1, seed=0, method="iterative") -> dict:
    """Split one Dataset; returns ``{"parts", "names", "assignment", "requested", "order",
    "notes", "rare_labels", "quality", "random_quality"}``.

    ``notes`` are one-line warnings for the user (order 2 on single-label data, rare labels).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown --method {method!r}; use one of: {', '.join(METHODS)}.")
    n = len(ds)
    if n < 2:
        raise DataError(f"{ds.source or 'the dataset'} has only {n} document(s); a split needs at least 2, add documents.")
    if ds.y.nnz == 0:
        where = f" in {ds.source}" if ds.source else ""
        raise DataError(f"no labels at all{where}; check --label-col / --label-cols (nothing to stratify).")
    names, counts = plan_parts(n, test_size=test_size, valid_size=valid_size, folds=folds)
    notes, order = _check_order(ds, order)
    assignment = assign_parts(ds.y, counts, method=method, order=order, seed=seed)
    parts = {name: ds.subset(np.flatnonzero(assignment == j)) for j, name in enumerate(names)}
    return _result(ds.y, assignment, label_names=ds.label_names, names=names, counts=counts, parts=parts,
                   order=order, seed=seed, notes=notes)


def assemble_split(train, test, valid=None, *, valid_size=None, order=1, seed=0, method="iterative") -> dict:
    """A split from parts the user already has; a missing valid part is carved from train
    (``valid_size`` of train's documents, same stratification). Same return value as
    ``split_dataset``; quality is measured on the union, label space = sorted union."""
    if method not in METHODS:
        raise ConfigError(f"unknown --method {method!r}; use one of: {', '.join(METHODS)}.")
    names_all = sorted(set(train.label_names) | set(test.label_names) | set(valid.label_names if valid else []))
    train, test = train.with_label_names(names_all), test.with_label_names(names_all)
    valid = valid.with_label_names(names_all) if valid is not None else None
    for part, ds in (("train", train), ("test", test), ("valid", valid)):
        if ds is not None and len(ds) == 0:
            raise DataError(f"the {part} file {ds.source} has no documents.")
    overlap = _overlap_notes({"train": train, "valid": valid, "test": test})
    notes, order = _check_order_many([train, test] + ([valid] if valid is not None else []), order)
    notes = overlap + notes
    if valid is None and valid_size is not None:
        n_train = len(train)
        if n_train < 2:
            raise DataError(f"train has {n_train} document(s); cannot carve a valid part from it.")
        carved = int(resolve_sizes([valid_size], n_train, names=["valid"], options=["--valid-size"])[0])
        if carved >= n_train:
            raise ConfigError(f"--valid-size {valid_size} takes all {n_train} train documents; use a smaller size.")
        a = assign_parts(train.y, [n_train - carved, carved], method=method, order=order, seed=seed)
        train, valid = train.subset(np.flatnonzero(a == 0)), train.subset(np.flatnonzero(a == 1))
    names = ["train"] + (["valid"] if valid is not None else []) + ["test"]
    parts = {"train": train, "test": test}
    if valid is not None:
        parts["valid"] = valid
    y = sp.vstack([parts[nm].y for nm in names], format="csr")
    counts = [len(parts[nm]) for nm in names]
    assignment = np.repeat(np.arange(len(names)), counts)
    return _result(y, assignment, label_names=names_all, names=names, counts=counts, parts=parts, order=order,
                   seed=seed, notes=notes)


def _overlap_notes(parts: dict) -> list[str]:
    """Refuse parts that share a document id (DataError); one warning per part that shares texts
    with the test part.

    An id in two parts is one document in both: test scores on it would measure memory, not
    generalisation. Ids that are row numbers (a file without an id column) are not compared.
    Equal texts may be different documents (short texts repeat in real data), so they only warn.
    """
    names = [nm for nm in ("train", "valid", "test") if parts.get(nm) is not None]
    for a_pos, a in enumerate(names):
        for b in names[a_pos + 1 :]:
            first, second = parts[a], parts[b]
            if first.row_number_ids or second.row_number_ids:
                continue
            shared = set(first.ids).intersection(second.ids)
            if shared:
                doc_id = next(i for i in second.ids if i in shared)
                raise DataError(
                    f"id '{doc_id}' is in both the {a} file {first.source} and the {b} file {second.source}"
                    f" ({len(shared)} shared id(s)); a document belongs in one part only: remove the shared"
                    f" documents from one file, or make the ids unique across the files."
                )
    notes = []
    test = parts["test"]
    for other in ("train", "valid"):
        ds = parts.get(other)
        if ds is None:
            continue
        texts = set(ds.texts)
        same = [i for i, t in enumerate(test.texts) if t in texts]
        if same:
            example = "" if test.row_number_ids else f", e.g. id '{test.ids[same[0]]}'"
            notes.append(
                f"{len(same)} test document(s) of {test.source} have the same text as a {other} document"
                f" of {ds.source}{example}; if they are the same documents, remove them from one file"
                f" (test scores on them are optimistic)."
            )
    return notes


def labels_missing_from_train(parts: dict) -> dict[str, dict[str, int]]:
    """Labels of the valid and test parts that have no train document, with how many documents of
    that part carry each: ``{"test": {"label": n_docs, ...}, ...}``; parts without any are left out.

    ``parts`` maps part names to Datasets in one label space (a split's parts). No model learns such
    a label from train: on test its documents count as misses, on valid no rule is tuned for it.
    """
    train = parts.get("train")
    if train is None:
        return {}
    in_train = np.asarray(train.y.sum(axis=0)).ravel() > 0
    missing: dict[str, dict[str, int]] = {}
    for name in ("valid", "test"):
        ds = parts.get(name)
        if ds is None or ds.label_names != train.label_names:
            continue
        counts = np.asarray(ds.y.sum(axis=0)).ravel()
        found = {label: int(c) for label, c, seen in zip(ds.label_names, counts, in_train) if c and not seen}
        if found:
            missing[name] = found
    return missing


def missing_labels_notes(missing: dict[str, dict[str, int]]) -> list[str]:
    """One warning per part of :func:`labels_missing_from_train`'s result."""
    notes = []
    for part, found in missing.items():
        names = sorted(found, key=lambda name: (-found[name], name))  # most documents first
        shown = ", ".join(f"{name} ({found[name]} {part} document{'s' if found[name] != 1 else ''})"
                          for name in names[:5])
        more = f", ... ({len(names)} labels in all)" if len(names) > 5 else ""
        effect = "they count as misses" if part == "test" else "no decision rule is tuned for them"
        notes.append(
            f"{len(names)} label(s) occur in {part} but never in train: {shown}{more}; no model learns them"
            f" from train, and {effect}. Add train documents with these labels, or remove them from {part}."
        )
    return notes


def _check_order(ds, order: int) -> tuple[list[str], int]:
    return _check_order_many([ds], order)


def _check_order_many(datasets, order: int) -> tuple[list[str], int]:
    if order not in (1, 2):
        raise ConfigError(f"--order {order}: use 1 (labels) or 2 (labels and label pairs).")
    notes = []
    if order == 2 and all(int(np.diff(ds.y.indptr).max(initial=0)) <= 1 for ds in datasets):
        notes.append("--order 2 balances label pairs, but every document has at most one label; using --order 1.")
        order = 1
    return notes, order


def _result(y, assignment, *, label_names, names, counts, parts, order, seed, notes) -> dict:
    """The result dict of :func:`split_dataset` / :func:`assemble_split` for ``assignment`` (part
    index per row of ``y``): sizes, quality against a random split of the same sizes, notes."""
    n_parts = len(names)
    rare = rare_labels(y, n_parts)
    if rare.size:
        shown = ", ".join(label_names[i] for i in rare[:10]) + (", ..." if rare.size > 10 else "")
        notes.append(
            f"{rare.size} label(s) have fewer documents than the {n_parts} parts and cannot be in every part: {shown}"
        )
    quality = split_quality(y, assignment, n_parts, sizes=counts)
    baseline = split_quality(y, random_split(y, list(counts), seed=seed), n_parts, sizes=counts)
    return {
        "parts": parts,
        "names": names,
        "assignment": assignment,
        "requested": dict(zip(names, (int(c) for c in counts))),
        "order": order,
        "notes": notes,
        "rare_labels": [label_names[i] for i in rare],
        "quality": quality,
        "random_quality": baseline,
        "label_counts": label_table(y, assignment, n_parts),
    }

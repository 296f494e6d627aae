"""Statistics of a dataset or split folder (what `nlpkit inspect` shows): labels, texts, duplicates
and near-duplicates."""

from __future__ import annotations

import numpy as np

from nlpkit.data.dataset import Dataset, join_datasets, without_gc
from nlpkit.data.near_dup import near_duplicate_examples, near_duplicate_record, near_duplicates
from nlpkit.data.splits import Split


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


@without_gc
def describe(ds: Dataset, top: int = 10, n_examples: int = 3, near_dups: bool = True) -> dict:
    """Statistics of a dataset as a JSON-serialisable dict (what `nlpkit inspect` shows).

    Parameters
    ----------
    ds
        The dataset.
    top
        How many labels to list at the head and at the tail of the frequency table.
    n_examples
        How many duplicate-text groups (and near-duplicate pairs) to show.
    near_dups
        Also count near-duplicate texts (:mod:`nlpkit.data.near_dup`), under ``near_duplicate_texts``.
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

    from nlpkit.text import count_words

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

    stats = {
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
    if near_dups:
        found = near_duplicates(ds.texts)
        record = near_duplicate_record({"all": ds.texts}, found=found)
        stats["near_duplicate_texts"] = {**record["within"]["all"], "settings": record["settings"],
                                         "examples": near_duplicate_examples(ds.texts, ds.ids, found, n_examples)}
    return stats


def describe_split(split: Split, top: int = 10, n_examples: int = 3) -> dict:
    """:func:`describe` of all a split's documents together, with ``parts`` (documents per part) and
    ``near_duplicates``: the record `nlpkit split` wrote into ``split.json`` (counts within each part
    and across each pair), or, for a split written before it was recorded, the same computed now
    (``recorded`` says which)."""
    names = sorted(split.parts, key=_part_order)
    stats = describe(join_datasets(*(split.parts[nm] for nm in names)), top=top, n_examples=n_examples,
                     near_dups=False)
    stats["source"] = str(split.path)
    stats["parts"] = {nm: len(split.parts[nm]) for nm in names}
    record = split.manifest.get("near_duplicates")
    recorded = isinstance(record, dict)
    if not recorded:
        record = near_duplicate_record({nm: split.parts[nm].texts for nm in names},
                                       {nm: split.parts[nm].ids for nm in names})
    stats["near_duplicates"] = {**record, "recorded": recorded}
    return stats


def _part_order(name: str) -> tuple:
    """train, valid, folds in numeric order, test: the order `nlpkit split` writes its parts in."""
    rank = {"train": 0, "valid": 1, "test": 3}
    return (rank.get(name, 2), int(name[4:]) if name[4:].isdigit() else 0, name)


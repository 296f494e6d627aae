"""Leakage in a report: test documents with a near-duplicate in train or valid, and every run's
headline metric recomputed on the test documents without them.

A test document that nearly repeats a training document (a reposted story, a templated ticket) is
scored on memory as much as on generalisation, so scores with and without such documents are shown
side by side. The documents are those `nlpkit split` recorded in ``split.json``
(:func:`nlpkit.data.near_duplicate_record`); a split written before that record existed, or a
fold of a cross-validation split, has them computed here.
"""

from __future__ import annotations

import numpy as np


def test_near_duplicates(split) -> tuple[dict, bool]:
    """The test part's near-duplicate entry (``total``, ``in``, ``ids``, ``settings``) and whether it
    was read from ``split.json`` (else computed now, uncapped)."""
    from nlpkit.data import near_duplicate_record

    record = split.manifest.get("near_duplicates")
    entry = record.get("test_with_near_duplicates") if isinstance(record, dict) else None
    test_ids = set(split.test.ids)
    # A record applies when it lists every such id (not capped) and they are this test part's ids.
    if isinstance(entry, dict) and entry.get("ids_complete") and all(i in test_ids for i in entry["ids"]):
        return {**entry, "settings": record.get("settings", {})}, True
    names = [nm for nm in split.parts if nm != "test"] + ["test"]
    fresh = near_duplicate_record({nm: split.parts[nm].texts for nm in names},
                                  {nm: split.parts[nm].ids for nm in names}, max_ids=len(split.test))
    return {**fresh["test_with_near_duplicates"], "settings": fresh["settings"]}, False


def leakage_section(split, y_csr, predictions: dict[str, list], metric: str) -> dict:
    """``report["leakage"]``: how many test documents have near-duplicates in the other parts, and
    each row's ``metric`` (point value) on the test documents without them.

    Parameters
    ----------
    split
        The Split the report scores (its test part is the ground truth).
    y_csr
        The test labels as the metrics layer takes them (rows in ``split.test`` order).
    predictions
        Row name -> the predictions (csr, same rows) of that row's runs; several runs (seeds)
        are averaged, as the report's headline is.
    metric
        A name from ``nlpkit.metrics.METRICS``.
    """
    from nlpkit.metrics import METRICS

    entry, recorded = test_near_duplicates(split)
    flagged = set(entry["ids"])
    keep = np.fromiter((i not in flagged for i in split.test.ids), dtype=bool, count=len(split.test))
    section = {
        "recorded": recorded,
        "settings": entry["settings"],
        "metric": metric,
        "n_test": len(split.test),
        "total": int(entry["total"]),
        "in": entry["in"],
        "ids": entry["ids"][:20],
        "scores_without": {},
    }
    if section["total"] and keep.any():
        y_kept = y_csr[keep]
        section["scores_without"] = {
            name: float(np.mean([METRICS[metric](y_kept, pred[keep]) for pred in preds]))
            for name, preds in predictions.items()
        }
    return section


def leakage_line(report: dict) -> str | None:
    """The report's one-line warning about test near-duplicates (None when there are none):
    how many, where, and each row's headline metric without them (with it on the whole test part)."""
    leak = report.get("leakage")
    if not leak or not leak.get("total"):
        return None
    where = " and ".join(name for name, n in leak["in"].items() if n) or "train"
    n = leak["total"]
    head = (f"{n} of {leak['n_test']} test document{'s' if n != 1 else ''} "
            f"{'have' if n != 1 else 'has'} near-duplicates in {where}")
    rule = leak.get("settings") or {}
    if rule:
        head += f" (Jaccard >= {rule.get('threshold', 0.8):g} of {rule.get('shingle_words', 3)}-word shingles)"
    if not leak["scores_without"]:
        return f"{head}; no test document is left without them."
    scores = ", ".join(
        f"{row['label']} {leak['scores_without'][row['name']]:.3f} (all: {row['metric']['point']:.3f})"
        for row in report["rows"] if row["name"] in leak["scores_without"]
    )
    name = (report.get("settings") or {}).get("metric_label") or leak["metric"]
    return f"{head}; {name} without them: {scores}"

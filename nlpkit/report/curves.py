"""The report's learning curves: the ``nlpkit curve`` points of a split, per model and fraction.

A point's value is its headline metric on the test part with a 95 % interval: the document bootstrap
with one seed, the seed-aware interval (:func:`nlpkit.metrics.seed_aware_diff`) with several. Two
curves *cross* where the sign of their difference changes between two measured fractions; nothing
is said beyond the largest fraction measured (no extrapolation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

CURVE_ROLE = "curve-point"  # nlpkit.curve.CURVE_ROLE (the report layer does not import commands)
NOTE = ("Each point trains on that share of the train part (nested, stratified), with the valid part whole and "
        "used as the model always uses it; every point is scored on the same test part. Nothing is extrapolated "
        "beyond the largest share measured.")


def curve_runs(root, split, test_sha256: str) -> list:
    """The split's complete curve-point runs scored on this test part."""
    from nlpkit.runs import list_runs

    return [r for r in list_runs(root, split_sha256=split.fingerprint)
            if r.role == CURVE_ROLE and (r.info.get("data") or {}).get("test_sha256") == test_sha256]


def build_curves(runs: list, split, y: np.ndarray, *, metric: str, n_boot: int, seed: int, alpha: float,
                 align, labels_of, key_of) -> dict | None:
    """``{"metric", "models": [{"label", "points": [...]}], "crossings": [...], "note"}``, or None
    without curve points. ``y``: the split's test labels (bool, documents x labels). ``align(run,
    split, shape)``, ``labels_of(runs)`` and ``key_of(run, ignore)`` are the report's own (passed
    in, so this module does not import the one that calls it)."""
    from nlpkit.metrics import bootstrap_ci, seed_aware_diff

    if not runs:
        return None
    y_csr = sparse.csr_matrix(y, dtype=np.float64)
    by_model: dict[str, dict[float, list]] = {}
    first: dict[str, Any] = {}
    for run in runs:
        key = key_of(run, ("cross_fit",))  # its document count follows the fraction
        first.setdefault(key, run)
        by_model.setdefault(key, {}).setdefault(float(run.info["curve"]["fraction"]), []).append(run)
    labels = labels_of(list(first.values()))
    models = []
    for key, points in by_model.items():
        out = []
        for fraction in sorted(points):
            members = sorted(points[fraction], key=lambda r: (r.info.get("seed") or 0, r.name))
            preds = [sparse.csr_matrix(align(r, split, y.shape)[1], dtype=np.float64) for r in members]
            if len(preds) > 1:
                d = seed_aware_diff(y_csr, preds, (), metric, n_boot=n_boot, alpha=alpha, seed=seed)
                point, lo, hi = d["point"], d["lo"], d["hi"]
            else:
                point, lo, hi = bootstrap_ci(y_csr, preds[0], metric, n_boot=n_boot, alpha=alpha, seed=seed)
            out.append({"fraction": fraction, "n_train": int(np.mean([r.info["curve"]["n_train"] for r in members])),
                        "point": float(point), "lo": float(lo), "hi": float(hi),
                        "seeds": [r.info.get("seed") for r in members], "runs": [r.name for r in members]})
        models.append({"label": labels[first[key].name], "model": first[key].model, "kind": first[key].kind,
                       "points": out})
    return {"metric": metric, "models": models, "crossings": crossings(models), "note": NOTE}


def crossings(models: list[dict]) -> list[str]:
    """Where two curves change order between consecutive fractions both were measured at."""
    found = []
    for i, a in enumerate(models):
        for b in models[i + 1:]:
            pa = {p["fraction"]: p for p in a["points"]}
            pb = {p["fraction"]: p for p in b["points"]}
            shared = sorted(set(pa) & set(pb))
            for f0, f1 in zip(shared, shared[1:]):
                d0, d1 = pa[f0]["point"] - pb[f0]["point"], pa[f1]["point"] - pb[f1]["point"]
                if d0 * d1 < 0:
                    lead0, lead1 = (a, b) if d0 > 0 else (b, a)
                    found.append(f"{lead1['label']} overtakes {lead0['label']} between {f0:g} and {f1:g} of the train "
                                 f"part ({pa[f0]['n_train']:,} and {pa[f1]['n_train']:,} training documents)")
    return found

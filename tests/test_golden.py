"""Golden outputs: splits, baseline scores and predictions on the bundled samples at fixed seeds.

Recorded before the package redesign (issue #21) and asserted after it, so that moving code cannot
change what a user gets: the same seed gives byte-identical split files, the same test metrics, the
same predicted labels and the same scores, and a saved model predicts what its run recorded. A change
that alters these on purpose re-records them in its own commit, saying why:

    NLPKIT_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from nlpkit.baseline import baseline_config, run_baselines
from nlpkit.models import load_model
from nlpkit.split import split_files

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "golden.json"
UPDATE = os.environ.get("NLPKIT_UPDATE_GOLDEN") == "1"

pytestmark = pytest.mark.slow

# (name, source file, split options, baseline models)
CASES = [
    ("reuters", "reuters_sample.jsonl", dict(test_size=0.2, valid_size=0.1, seed=13),
     ["majority", "tfidf-lr", "fasttext", "word2vec"]),
    ("agnews", "agnews_sample.jsonl", dict(test_size=0.25, valid_size=0.1, seed=3),
     ["majority", "tfidf-lr", "fasttext", "word2vec"]),
    ("cooking-order2", "cooking_sample.txt", dict(test_size=0.2, valid_size=0.1, order=2, seed=7), []),
    ("agnews-folds", "agnews_sample.jsonl", dict(folds=3, seed=5), []),
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _without_paths(obj):
    """split.json less the source files' paths (the clone's location is not an output)."""
    if isinstance(obj, dict):
        return {k: _without_paths(v) for k, v in obj.items() if k != "path"}
    if isinstance(obj, list):
        return [_without_paths(v) for v in obj]
    return obj


def _scores_digest(scores: np.ndarray) -> dict:
    """A compact, comparable record of a score matrix: its sum, a few rows, its shape."""
    scores = np.asarray(scores, dtype=np.float64)
    return {"shape": list(scores.shape), "sum": float(scores.sum()),
            "rows": np.round(scores[:: max(1, len(scores) // 5)][:5], 7).tolist()}


def _record(name, source, options, models, tmp_path) -> dict:
    split, _, manifest = split_files(tmp_path / "split", input=REPO / "data" / source, **options)
    files = sorted(split.path.rglob("*.jsonl"))
    out = {"split_files": {p.relative_to(split.path).as_posix(): _sha(p) for p in files},
           "split_json": _without_paths(json.loads((split.path / "split.json").read_text(encoding="utf-8"))),
           "split_sha256": split.fingerprint}
    if not models:
        return out
    config = baseline_config(models, seed=options["seed"])
    out["baselines"] = {}
    for run in run_baselines(split, config, runs_root=tmp_path / "runs"):
        ids, scores, pred = run.predictions()
        test = split.parts["test"]
        reloaded = load_model(run.model_dir).predict_proba(test.texts)
        np.testing.assert_allclose(reloaded, scores, rtol=0, atol=2e-6)  # saved model = recorded run
        out["baselines"][run.model] = {
            "test_metrics": run.metrics()["test"]["metrics"],
            "pred_sha256": hashlib.sha256(np.ascontiguousarray(pred, dtype=np.uint8).tobytes()).hexdigest(),
            "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            "scores": _scores_digest(scores),
        }
    return out


def _compare(got, want, where=""):
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            _compare(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want)):
            _compare(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=2e-6), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_outputs_match_the_golden_record(case, tmp_path):
    name = case[0]
    got = json.loads(json.dumps(_record(*case, tmp_path)))
    golden = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.exists() else {}
    if UPDATE:
        golden[name] = got
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return
    assert name in golden, f"no golden record for {name}; record it with NLPKIT_UPDATE_GOLDEN=1"
    _compare(got, golden[name], name)

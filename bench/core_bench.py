"""Speed of the shared core: dataset reading, metrics, resampling, and the whole report.

Targets it checks (issues #2 and #7): reading a large JSONL file in seconds (linear, no per-row
pandas); evaluate + threshold tuning on a cooking-sized matrix (3,000 x 735) in about a second;
1,000 bootstrap resamples and 10,000 randomisation shuffles on a Reuters-sized test set (3,019 x 90)
in well under a second; ``nlpkit report`` with five runs on a Reuters-sized split in under 5 s.

Synthetic data, seeded; each figure is the median of ``--repeats`` runs (wall and CPU seconds).
Usage: python bench/core_bench.py [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def bench_read(tmp: Path, rows: int, repeats: int) -> dict:
    from nlpkit.data import read_dataset

    rng = np.random.default_rng(0)
    path = tmp / "big.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i, k in enumerate(rng.integers(1, 4, size=rows)):
            labels = [f"l{j}" for j in rng.integers(0, 200, size=k)]
            fh.write(json.dumps({"id": str(i), "text": f"short text number {i}", "labels": labels}) + "\n")
    wall, cpu = timed(lambda: read_dataset(path), repeats)
    return {"what": f"read_dataset, {rows:,} JSONL rows", "wall_s": wall, "cpu_s": cpu}


def bench_metrics(repeats: int) -> list[dict]:
    import scipy.sparse as sp

    from nlpkit.metrics import approx_randomization, bootstrap_ci, evaluate, paired_bootstrap_diff, tune_rule

    rng = np.random.default_rng(0)
    y = rng.random((3000, 735)) < 2.3 / 735
    scores = np.clip(0.4 * y + 0.7 * rng.random(y.shape), 0, 1)

    def tune_and_evaluate():
        rule = tune_rule(y, scores, task="multi")
        evaluate(sp.csr_matrix(y), scores, task="multi", rule=rule)

    out = [{"what": "tune_rule + evaluate, 3,000 x 735", **dict(zip(("wall_s", "cpu_s"), timed(tune_and_evaluate, repeats)))}]
    y = rng.random((3019, 90)) < 1.2 / 90
    a = np.where(y, rng.random(y.shape) < 0.85, rng.random(y.shape) < 0.002)
    b = np.where(y, rng.random(y.shape) < 0.80, rng.random(y.shape) < 0.003)
    for metric in ("micro_f1", "macro_f1"):
        for name, fn in [
            ("bootstrap_ci x1,000", lambda m=metric: bootstrap_ci(y, a, m, n_boot=1000, seed=0)),
            ("paired_bootstrap_diff x1,000", lambda m=metric: paired_bootstrap_diff(y, a, b, m, n_boot=1000, seed=0)),
            ("approx_randomization x10,000", lambda m=metric: approx_randomization(y, a, b, m, n_iter=10000, seed=0)),
        ]:
            wall, cpu = timed(fn, repeats)
            out.append({"what": f"{name}, {metric}, 3,019 x 90", "wall_s": wall, "cpu_s": cpu})
    return out


def reuters_sized_split(tmp: Path, seeds: tuple[int, ...] = (0,)):
    """A split with 3,019 test documents x 90 labels and five recorded runs of varying quality; with
    several ``seeds``, the three baselines and the fine-tuned model once per seed (the majority once)."""
    import scipy.sparse as sp

    from nlpkit.data import Dataset, write_split
    from nlpkit.runs import create_run

    rng = np.random.default_rng(1)
    names = [f"label{j:02d}" for j in range(90)]
    freq = np.geomspace(0.35, 0.002, 90)

    def part(n: int, prefix: str) -> Dataset:
        y = rng.random((n, 90)) < freq
        y[np.arange(n), 0] |= ~y.any(axis=1)
        return Dataset(ids=[f"{prefix}{i}" for i in range(n)], texts=[f"document {prefix}{i}" for i in range(n)],
                       y=sp.csr_matrix(y.astype(np.uint8)), label_names=names, task="multi", extra=None, source=None)

    from nlpkit.data import near_duplicate_record

    parts = {"train": part(2000, "tr"), "test": part(3019, "te")}
    # as `nlpkit split` writes it: the near-duplicate record made once, at split time
    record = near_duplicate_record({k: p.texts for k, p in parts.items()}, {k: p.ids for k, p in parts.items()})
    split = write_split(tmp / "split", parts, {"seed": 1, "near_duplicates": record})
    y = split.test.y.toarray().astype(bool)
    runs = tmp / "runs"
    for i, (model, kind, rate) in enumerate([("majority", "baseline", 0.3), ("tfidf-lr", "baseline", 0.05),
                                             ("fasttext", "baseline", 0.06), ("transformer", "finetune", 0.03),
                                             ("word2vec", "baseline", 0.04)]):
      for seed in (seeds if model != "majority" else seeds[:1]):
        noisy = y ^ (np.random.default_rng(100 * i + seed).random(y.shape) < rate)
        scores = np.clip(np.where(noisy, 0.8, 0.2) + rng.normal(0, 0.1, y.shape), 0, 1).astype(np.float32)
        with create_run(kind, model, runs) as w:
            w.write_json("run.json", {
                "config": {"model": model}, "seed": seed,
                "data": {"split_dir": str(split.path), "split_sha256": split.fingerprint,
                         "test_sha256": split.test_fingerprint, "label_names": names, "task": "multi"},
                "timings": {"fit_seconds": 1.0 + i, "predict_docs_per_s": 1000.0 / (i + 1)},
                "model_size_bytes": 1000 * (i + 1)})
            w.write_json("metrics.json", {"test": {}})
            w.write_predictions(split.test.ids, scores, scores >= 0.5)
    return split, runs


def bench_report(tmp: Path, repeats: int, seeds: tuple[int, ...] = (0,)) -> dict:
    tmp = tmp / f"report-{len(seeds)}"
    split, runs = reuters_sized_split(tmp, seeds)
    cmd = [sys.executable, "-m", "nlpkit", "report", str(split.path), "--runs-dir", str(runs), "--out", str(tmp / "rep")]
    walls, cpus = [], []
    for _ in range(repeats):
        start, before = time.perf_counter(), os.times()
        subprocess.run(cmd, check=True, capture_output=True)
        after = os.times()
        walls.append(time.perf_counter() - start)
        cpus.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
    if len(seeds) > 1:
        return {"what": f"nlpkit report, 3 baselines + 1 fine-tuned x {len(seeds)} seeds + majority, 3,019 x 90",
                "wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "target_s": 3.0}
    return {"what": "nlpkit report (CLI, whole process), 5 runs, 3,019 x 90, table + html + md + json",
            "wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "target_s": 5.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = [bench_read(tmp, args.rows, args.repeats), *bench_metrics(args.repeats), bench_report(tmp, args.repeats),
                   bench_report(tmp, args.repeats, seeds=(1, 2, 3))]
    print(f"{'what':<82} {'wall s':>8} {'CPU s':>8}")
    for r in results:
        target = f"  (target < {r['target_s']:.0f} s: {'met' if r['wall_s'] < r['target_s'] else 'NOT met'})" if "target_s" in r else ""
        print(f"{r['what']:<82} {r['wall_s']:8.3f} {r['cpu_s']:8.3f}{target}")


if __name__ == "__main__":
    main()

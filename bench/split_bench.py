"""Benchmark of `nlpkit.split` against scikit-multilearn 0.2.0 and iterstrat 0.1.9.

Run from the repository root::

    python bench/split_bench.py            # every scenario (scikit-multilearn takes minutes)
    python bench/split_bench.py --quick    # smaller matrices, one repeat of the slow peers
    python bench/split_bench.py --scenario synth1 --peers iterstrat --repeats 5

Scenarios
---------
synth1   100,000 docs x 200 labels (~3 labels/doc, Zipf 1), test part 0.2, order 1:
         nlpkit vs iterstrat vs scikit-multilearn.
synth2   the same matrix at order 2: nlpkit vs scikit-multilearn (iterstrat, order 1, for quality).
big      1,000,000 x 1,000 sparse (~3 labels/doc), order 1, nlpkit only: time and peak memory
         (run in a child process so that its peak RSS is its own; tracemalloc peak of the split).
reuters  10 folds of Reuters-21578 ModApte train (../shared/data/reuters21578/train.jsonl):
         nlpkit vs scikit-multilearn vs iterstrat (FZ, LD, ...). Skipped when the file is absent.
real     every multi-label dataset in ../shared/data, 0.8/0.2: nlpkit vs the peers.

Timings: the peers and nlpkit run interleaved in the same process, ``--repeats`` times each
(``--slow-repeats`` for scikit-multilearn), and the median is reported, so that load from other
processes hits both sides of every ratio alike. Every run is seeded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO / ".." / "shared" / "data"

from nlpkit import split as S  # noqa: E402


def power_law_labels(n_docs: int, n_labels: int, mean_labels: float = 3.0, zipf: float = 1.0, seed: int = 0):
    """A seeded synthetic multi-label matrix with a power-law label distribution.

    Each document draws ``1 + Poisson(mean_labels - 1)`` labels (so every document has at least
    one) independently from ``P(label of rank r) ~ 1 / r**zipf``; repeated draws collapse, so the
    mean is slightly below ``mean_labels``. Label ranks are shuffled so that column order carries
    no frequency information (scikit-multilearn's choice depends on dictionary order).

    Returns a CSR matrix (n_docs, n_labels) of int8 0/1.
    """
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_labels + 1) ** zipf
    p /= p.sum()
    k = 1 + rng.poisson(mean_labels - 1, n_docs)
    rows = np.repeat(np.arange(n_docs), k)
    cols = rng.permutation(n_labels)[rng.choice(n_labels, size=rows.size, p=p)]
    y = sp.csr_matrix((np.ones(rows.size, np.int8), (rows, cols)), shape=(n_docs, n_labels))
    y.sum_duplicates()
    y.data[:] = 1
    return y


# --- the contenders: each returns a part index per row (0 = train/first part) --------------------


def run_nlpkit(y, counts, order, seed):
    return S.iterative_split(y, counts, order=order, seed=seed)


def run_nlpkit_fast(y, counts, order, seed):
    return S.iterative_split(y, counts, order=order, seed=seed, rebalance=False)


def run_skml(y, counts, order, seed):
    return S.skmultilearn_split(y, counts, order=order, seed=seed)


def run_iterstrat(y, counts, order, seed):
    """iterstrat 0.1.9 through its public classes (dense bool matrix; order 1 only)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit

    dense = np.asarray(y.todense(), dtype=bool)
    x = np.zeros((dense.shape[0], 1))
    part = np.zeros(dense.shape[0], np.int64)
    if len(counts) == 2:
        splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=int(counts[1]), random_state=seed)
        _, test = next(splitter.split(x, dense))
        part[test] = 1
    else:
        splitter = MultilabelStratifiedKFold(n_splits=len(counts), shuffle=True, random_state=seed)
        for j, (_, test) in enumerate(splitter.split(x, dense)):
            part[test] = j
    return part


CONTENDERS = {"nlpkit": run_nlpkit, "nlpkit-norebalance": run_nlpkit_fast, "iterstrat": run_iterstrat,
              "skmultilearn": run_skml}
SLOW = {"skmultilearn"}


def compare(name, y, counts, *, order, seed, peers, repeats, slow_repeats, log):
    """Time every contender (interleaved rounds, medians) and measure the quality of its split."""
    runners = ["nlpkit"] + [p for p in peers if p in CONTENDERS and p != "nlpkit"]
    if order == 2:
        runners = [r for r in runners if r != "iterstrat"]  # no order 2 in iterstrat
    times = {r: [] for r in runners}
    parts = {}
    for rep in range(max(repeats, slow_repeats)):
        for r in runners:
            if rep >= (slow_repeats if r in SLOW else repeats):
                continue
            t0 = time.perf_counter()
            parts[r] = CONTENDERS[r](y, counts, order, seed)
            times[r].append(time.perf_counter() - t0)
            log(f"  {name}: {r} order {order} run {rep + 1}: {times[r][-1]:.3f} s")
    parts["random"] = S.random_split(y, counts, seed=seed)
    rows = {}
    for r, part in parts.items():
        q = S.split_quality(y, part, len(counts), sizes=counts)
        rows[r] = {
            "seconds": statistics.median(times[r]) if r in times else None,
            "runs": len(times.get(r, [])),
            **{k: q[k] for k in ("LD", "LPD", "rLD", "DCP", "FZ", "FLZ", "FLZ_avoidable", "FZLC", "FLPZ")},
            "size_error_max": q["size_error_max"],
            "sizes": q["sizes"],
        }
    base = rows["nlpkit"]["seconds"]
    for r in runners:
        rows[r]["time_ratio_vs_nlpkit"] = rows[r]["seconds"] / base if base else None
    return {"scenario": name, "n_docs": y.shape[0], "n_labels": y.shape[1], "nnz": int(y.nnz), "order": order,
            "requested": [int(c) for c in counts], "results": rows}


def scenario_synth(args, order, log):
    n, L = (20_000, 100) if args.quick else (100_000, 200)
    y = power_law_labels(n, L, 3.0, 1.0, seed=args.seed)
    counts = S.resolve_sizes([0.8, 0.2], n)
    return compare(f"synthetic {n:,} x {L} order {order}", y, counts, order=order, seed=args.seed, peers=args.peers,
                   repeats=args.repeats, slow_repeats=args.slow_repeats, log=log)


def scenario_big_child(args) -> dict:
    n, L = (200_000, 1000) if args.quick else (1_000_000, 1000)
    y = power_law_labels(n, L, 3.0, 1.0, seed=args.seed)
    counts = S.resolve_sizes([0.8, 0.2], n)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        part = S.iterative_split(y, counts, order=1, seed=args.seed)
        times.append(time.perf_counter() - t0)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    S.iterative_split(y, counts, order=1, seed=args.seed)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    q = S.split_quality(y, part, 2, sizes=counts)
    return {"scenario": f"big {n:,} x {L} sparse order 1", "n_docs": n, "n_labels": L, "nnz": int(y.nnz),
            "seconds_median": statistics.median(times), "seconds_all": times,
            "peak_rss_mb_process": rss_after, "peak_rss_mb_before_split": rss_before,
            "tracemalloc_peak_mb_split": traced_peak / 2**20,
            "quality": {k: q[k] for k in ("LD", "rLD", "FLZ_avoidable", "size_error_max")}}


def scenario_big(args, log):
    cmd = [sys.executable, __file__, "--child-big", "--seed", str(args.seed), "--repeats", str(args.repeats)]
    if args.quick:
        cmd.append("--quick")
    log("  big: running in a child process")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def _read(path):
    from nlpkit.data import read_dataset

    return read_dataset(path)


def scenario_reuters(args, log):
    path = DATA / "reuters21578" / "train.jsonl"
    if not path.exists():
        log(f"  reuters: {path} not found, skipped")
        return None
    ds = _read(path)
    n = len(ds)
    counts = np.array([n // 10 + (1 if i < n % 10 else 0) for i in range(10)])
    return compare("Reuters-21578 ModApte train, 10 folds", ds.y, counts, order=1, seed=args.seed, peers=args.peers,
                   repeats=args.repeats, slow_repeats=args.slow_repeats, log=log)


def scenario_real(args, log):
    found = []
    for path in (DATA / "reuters21578" / "train.jsonl", DATA / "cooking_stackexchange" / "train.jsonl"):
        if path.exists():
            found.append(path)
    if not found:
        log("  real: ../shared/data not found, skipped")
    out = []
    for path in found:
        ds = _read(path)
        counts = S.resolve_sizes([0.8, 0.2], len(ds))
        for order in (1, 2):
            out.append(compare(f"{path.parent.name}/{path.name} 0.8/0.2 order {order}", ds.y, counts, order=order,
                               seed=args.seed, peers=args.peers, repeats=args.repeats,
                               slow_repeats=args.slow_repeats, log=log))
    return out


def print_table(res) -> None:
    if res is None:
        return
    if isinstance(res, list):
        for r in res:
            print_table(r)
        return
    print(f"\n## {res['scenario']}  ({res['n_docs']:,} docs, {res['n_labels']} labels, nnz {res['nnz']:,})")
    if "results" not in res:
        print(json.dumps({k: v for k, v in res.items() if k != "scenario"}, indent=1))
        return
    cols = ["seconds", "time_ratio_vs_nlpkit", "LD", "LPD", "rLD", "FZ", "FLZ_avoidable", "FLPZ", "size_error_max"]
    print("| method | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, row in res["results"].items():
        cells = []
        for c in cols:
            v = row.get(c)
            cells.append("-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)))
        print(f"| {name} | " + " | ".join(cells) + " |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", action="append", choices=["synth1", "synth2", "big", "reuters", "real"],
                    help="scenario(s) to run (default: all)")
    ap.add_argument("--peers", default="nlpkit-norebalance,iterstrat,skmultilearn",
                    help="comma-separated: nlpkit-norebalance, iterstrat, skmultilearn")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of nlpkit and iterstrat (median)")
    ap.add_argument("--slow-repeats", type=int, default=1, help="timed runs of scikit-multilearn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smaller synthetic matrices")
    ap.add_argument("--json", type=Path, help="also write all results to this JSON file")
    ap.add_argument("--child-big", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if args.child_big:
        print(json.dumps(scenario_big_child(args)))
        return

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    scenarios = args.scenario or ["synth1", "synth2", "big", "reuters", "real"]
    log(f"nlpkit split benchmark: {os.cpu_count()} CPUs, seed {args.seed}, scenarios {scenarios}")
    results = []
    for sc in scenarios:
        if sc == "synth1":
            res = scenario_synth(args, 1, log)
        elif sc == "synth2":
            res = scenario_synth(args, 2, log)
        elif sc == "big":
            res = scenario_big(args, log)
        elif sc == "reuters":
            res = scenario_reuters(args, log)
        else:
            res = scenario_real(args, log)
        print_table(res)
        sys.stdout.flush()
        results.append(res)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

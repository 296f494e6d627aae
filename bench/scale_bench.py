"""How `nlpkit split`, `baseline` and `report` scale: time and memory on a large synthetic data set.

Run from the repository root::

    python bench/scale_bench.py                      # 300,000 documents, 100 labels (about 45 minutes)
    python bench/scale_bench.py --no-forced-cross-fit  # without the 20-minute forced tfidf-lr cross-fit
    python bench/scale_bench.py --docs 50000 --models majority,tfidf-lr
    python bench/scale_bench.py --coefficients-only   # tfidf-lr's coefficients: conversion memory, scoring time

The bundled and shared data sets stop at 15,000 documents; users bring 300,000 support tickets. This
generates a seeded multi-label corpus of that size (below), then runs the commands a user would run,
each in a fresh process, and prints for each its wall time, the peak resident memory of its largest
process, and (baselines) test micro- and macro-F1. tfidf-lr runs twice: as by default (over
``cross_fit_max_docs`` documents it fits on train and decides on valid) and with the cross-fit forced
(``--set tfidf-lr.cross_fit_max_docs=none``), the ratio of their times printed: the evidence for
that default. Scores on synthetic text say nothing about real data; only time and memory are the
point here.

The corpus: a vocabulary of 50,000 words drawn with Zipf frequencies (exponent 1.1, as in natural
text); each document has a log-normal length (median 60 words), 1 + Poisson(0.5) labels drawn with
Zipf frequencies over the labels (exponent 1), and for each of its labels 1-4 words out of that
label's 20 indicative words, mixed among the background words.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

# A wrapper process per command: RUSAGE_CHILDREN's ru_maxrss is then the peak of that command's
# largest process (the CLI, or one of its workers), not of everything this script ran before.
_MEASURE = (
    "import resource, subprocess, sys, time, json\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "wall = time.perf_counter() - t\n"
    "print(json.dumps({'rc': rc.returncode, 'wall': wall, 'stderr': rc.stderr[-2000:],\n"
    "                  'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


def write_corpus(path: Path, n_docs: int, n_labels: int, seed: int = 0) -> None:
    """The seeded synthetic corpus described in the module docstring, as nlpkit JSONL."""
    rng = np.random.default_rng(seed)
    n_vocab, n_cue = 50_000, 20
    word_p = 1.0 / np.arange(1, n_vocab + 1) ** 1.1
    word_p /= word_p.sum()
    label_p = 1.0 / np.arange(1, n_labels + 1)
    label_p /= label_p.sum()
    cues = rng.choice(n_vocab, size=(n_labels, n_cue))  # each label's indicative words
    lengths = np.clip(rng.lognormal(np.log(60), 0.6, n_docs).astype(int), 5, 1000)
    background = rng.choice(n_vocab, size=int(lengths.sum()), p=word_p)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    with path.open("w", encoding="utf-8") as f:
        for d in range(n_docs):
            labels = np.unique(rng.choice(n_labels, size=1 + rng.poisson(0.5), p=label_p))
            words = list(background[starts[d]:starts[d + 1]])
            for label in labels:
                words += list(rng.choice(cues[label], size=rng.integers(1, 5)))
            rng.shuffle(words)
            f.write(json.dumps({"id": str(d), "text": " ".join(f"w{w}" for w in words),
                                "labels": [f"label{label}" for label in labels]}) + "\n")


def measure(argv: list[str], env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True, env=env,
                         check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(argv)} failed (exit {result['rc']}):\n{result['stderr']}")
    return result


def newest_run(runs: Path) -> dict:
    done = sorted(p for p in runs.iterdir() if not p.name.startswith("."))
    run = json.loads((done[-1] / "run.json").read_text(encoding="utf-8"))
    metrics = json.loads((done[-1] / "metrics.json").read_text(encoding="utf-8"))["test"]["metrics"]
    return {"run": done[-1].name, "micro_f1": metrics["micro_f1"], "macro_f1": metrics["macro_f1"],
            "fit_seconds": run["timings"]["fit_seconds"]}


# One child per conversion: ru_maxrss of a fresh process is then that conversion's own peak.
_CONVERT = (
    "import resource, sys, numpy as np, scipy.sparse as sp\n"
    "from nlpkit.models.tfidf_lr import compact_coefficients, csr_from_dense\n"
    "W = np.random.default_rng(0).random((int(sys.argv[2]), 100))\n"
    "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "how = sys.argv[1]\n"
    "C = (sp.csr_matrix(W.astype(np.float32)) if how == 'scipy' else csr_from_dense(W, np.float32) if how == 'csr'\n"
    "     else compact_coefficients(W))\n"
    "print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
)


def coefficient_costs(rows: int = 1_027_080, repeats: int = 5) -> None:
    """What tfidf-lr's coefficients cost outside the fit: peak memory of turning a bigram model's
    dense float64 weights (``rows`` features x 100 labels; by default the 300,000-document run's)
    into the float32 matrix kept: scipy's sparse conversion, nlpkit's ``csr_from_dense`` (what was
    kept before), and what nlpkit keeps now (``compact_coefficients``: dense float32); and the time
    of scoring a Reuters-sized test part (3,019 x 15,164 tf-idf features, 90 labels) as a sparse x
    sparse product, with sparse coefficients made dense for each product (older saved models), and
    with the dense coefficients kept."""
    import scipy.sparse as sp

    from nlpkit.models.liblinear import linear_scores

    peaks = {}
    for how, what in (("scipy", "scipy CSR"), ("csr", "csr_from_dense"), ("nlpkit", "nlpkit dense")):
        out = subprocess.run([sys.executable, "-c", _CONVERT, how, str(rows)], capture_output=True, text=True,
                             check=True)
        before, after = map(int, out.stdout.split())
        peaks[how] = (before / 1024, after / 1024)
        print(f"coefficients kept, {what:<14} {before / 1024:>7,.0f} MB before, {after / 1024:>7,.0f} MB at the peak",
              flush=True)
    print(f"  peak ratio scipy / nlpkit: {peaks['scipy'][1] / peaks['nlpkit'][1]:.2f}, "
          f"csr_from_dense / nlpkit: {peaks['csr'][1] / peaks['nlpkit'][1]:.2f}", flush=True)

    rng = np.random.default_rng(0)
    X = sp.random(3_019, 15_164, density=0.005, format="csr", random_state=rng)
    W = sp.csr_matrix(rng.normal(size=(15_164, 90)).astype(np.float32))
    b = np.zeros(90)
    np.testing.assert_array_equal((X @ W).toarray(), X @ W.toarray())  # the same sums

    def median_seconds(fn) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return sorted(times)[len(times) // 2]

    dense = W.toarray()
    sparse = median_seconds(lambda: (X @ W).toarray())
    densified = median_seconds(lambda: linear_scores(X, W, b, "multi"))
    ours = median_seconds(lambda: linear_scores(X, dense, b, "multi"))
    print(f"scoring 3,019 x 15,164 against 90 labels (median of {repeats}; the last two with the sigmoid): "
          f"sparse x sparse {sparse * 1e3:.1f} ms, sparse made dense {densified * 1e3:.1f} ms, "
          f"dense kept {ours * 1e3:.1f} ms (ratio sparse / dense kept {sparse / ours:.1f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=300_000)
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--models", default="majority,tfidf-lr,fasttext,word2vec")
    parser.add_argument("--no-forced-cross-fit", action="store_true",
                        help="skip the second tfidf-lr run with the cross-fit forced")
    parser.add_argument("--work", type=Path, default=Path("bench-scale"), help="folder for the data, split and runs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--coefficients-only", action="store_true",
                        help="only the cost of tfidf-lr's coefficients (memory of their conversion, scoring time)")
    parser.add_argument("--coefficient-rows", type=int, default=1_027_080,
                        help="features of the coefficient matrix converted (default: the 300,000-document bigram model's)")
    args = parser.parse_args()
    coefficient_costs(args.coefficient_rows)
    if args.coefficients_only:
        return

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data, split, runs = work / "data.jsonl", work / "split", work / "runs"
    env = {**os.environ, "NLPKIT_RUNS_DIR": str(runs)}
    nlpkit = [sys.executable, "-m", "nlpkit"]
    t = time.perf_counter()
    write_corpus(data, args.docs, args.labels)
    print(f"corpus: {args.docs:,} documents, {args.labels} labels, {data.stat().st_size / 1e6:.0f} MB "
          f"({time.perf_counter() - t:.0f} s to write)", flush=True)

    rows = []

    def step(name: str, argv: list[str], scored: bool = False) -> dict:
        result = measure(argv, env)
        row = {"step": name, "wall_s": round(result["wall"], 1), "peak_rss_mb": round(result["maxrss_kb"] / 1024)}
        if scored:
            row.update(newest_run(runs))
        rows.append(row)
        scores = f"  micro-F1 {row['micro_f1']:.4f}  macro-F1 {row['macro_f1']:.4f}" if scored else ""
        print(f"{name:<32} {row['wall_s']:>8.1f} s {row['peak_rss_mb']:>7,} MB{scores}", flush=True)
        return row

    step("split", [*nlpkit, "split", str(data), "-o", str(split), "--overwrite"])
    for model in args.models.split(","):
        default = step(f"baseline -m {model}", [*nlpkit, "baseline", str(split), "-m", model], scored=True)
        if model == "tfidf-lr" and not args.no_forced_cross_fit:
            forced = step("baseline -m tfidf-lr, cross-fit",
                          [*nlpkit, "baseline", str(split), "-m", model, "--set", "tfidf-lr.cross_fit_max_docs=none"],
                          scored=True)
            print(f"  the cross-fit takes {forced['wall_s'] / default['wall_s']:.2f}x the time of the default "
                  f"(test micro-F1 {forced['micro_f1'] - default['micro_f1']:+.4f}, "
                  f"macro-F1 {forced['macro_f1'] - default['macro_f1']:+.4f})", flush=True)
    step("report", [*nlpkit, "report", str(split)])
    if args.json:
        args.json.write_text(json.dumps({"docs": args.docs, "labels": args.labels, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

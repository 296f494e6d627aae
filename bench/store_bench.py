"""Issue #24's targets for the token store, on synthetic corpora of the asked sizes:

- memory: peak RSS, summed over the process tree, of ``nlpkit pretrain --prepare-only`` (``--sizes``),
  and of the in-memory path it replaced (``--old-path`` with ``--old-gb``: that nlpkit's ``pretrain``, one step);
- tokenisation throughput (``--throughput``): the store's build, the old in-memory ``encode_batch`` path
  and a plain Hugging Face ``datasets`` pipeline (``load_dataset("text")`` + ``filter`` +
  ``map(batched=True, num_proc)``), with one tokenizer, one after another on one corpus;
- training tokens/s (``--training``): ``nlpkit pretrain`` reading blocks from the store against the old
  in-memory path, same tokenizer, preset, length and steps, in alternating order (ABBA).

    python bench/store_bench.py --sizes 0.3,3 --old-path /tmp/old24 --old-gb 0.3 --throughput --training

The old path is an earlier nlpkit extracted read-only, e.g.
``mkdir /tmp/old24 && git archive 9c42c07^ | tar -x -C /tmp/old24``; it runs with PYTHONPATH set to it.

The corpus (``--text zipf``, the default): documents of 2-8 sentences (one document per line), sentences
of log-normal length (median 12 words), words drawn with Zipf frequencies (exponent 1.1, as in
bench/scale_bench.py) over a vocabulary that keeps growing with the corpus (Heaps' law: after n words,
ranks up to 40 * n ** 0.5), each rank written as a word of lower-case letters (bijective base 26, so
frequent words are short). ``--text sentences`` samples sentences from ../shared/data instead (a
fixed pool: the vocabulary stops growing). Corpora are seeded and written under ``--work``.

Memory is sampled every 0.25 s over the command and its children: RSS summed (shared pages counted
once per process: an upper bound), PSS summed (shared pages split), and each process's own peak.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
SOURCES = ["reuters21578/train.jsonl", "bbc_news/all.jsonl", "hallmarks_of_cancer/all.jsonl",
           "ag_news_test/ag_news_test.jsonl", "cooking_stackexchange/train.jsonl"]
ZIPF_S = 1.1  # rank-frequency exponent of the words (natural text: about 1)
HEAPS_K, HEAPS_BETA = 40, 0.5  # vocabulary after n words: K * n**beta (English: K 10-100, beta 0.4-0.6)
MAX_LETTERS = 6  # 26**6 ranks: more than any Heaps cap reached below 10**15 words


# --- corpora ------------------------------------------------------------------------------------

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


def write_sentences(fh, target: int, rng: np.random.Generator) -> dict:
    """Documents of 2-11 sentences sampled from the shared data sets (a fixed pool of sentences)."""
    pool, written = sentences(), 0
    while written < target:
        picks = rng.integers(0, len(pool), size=80_000)
        cuts = np.cumsum(rng.integers(2, 12, size=10_000))
        cuts = cuts[cuts < len(picks)]
        block = "".join(". ".join(pool[i] for i in chunk) + ".\n" for chunk in np.split(picks, cuts)).encode("utf-8")
        fh.write(block)
        written += len(block)
    return {"bytes": written}


def zipf_block(rng: np.random.Generator, words_before: int, n_docs: int) -> tuple[bytes, np.ndarray]:
    """``n_docs`` documents of Zipf words (module docstring) as UTF-8 bytes, and the word ranks used."""
    sents_per_doc = rng.integers(2, 9, size=n_docs)
    sent_len = np.clip(rng.lognormal(np.log(12), 0.5, size=int(sents_per_doc.sum())).astype(np.int64), 3, 60)
    n = int(sent_len.sum())
    cap = max(1000.0, HEAPS_K * (words_before + n) ** HEAPS_BETA)
    # inverse CDF of the continuous Zipf (Pareto) law on [1, cap], floored: ranks 1..cap
    a = 1.0 - ZIPF_S
    ranks = np.floor(((cap ** a - 1.0) * rng.random(n) + 1.0) ** (1.0 / a)).astype(np.int64)
    ranks = np.minimum(ranks, int(cap))
    # each word as a row of bytes: its letters, then " ", ". " (sentence end) or ".\n" (document end)
    rows = np.zeros((n, MAX_LETTERS + 2), dtype=np.uint8)
    length = np.zeros(n, dtype=np.int64)
    r = ranks.astype(np.int32)
    for j in range(MAX_LETTERS):  # a row's letters past its length are overwritten or cut below
        if r.max() <= 0:
            break
        length += r > 0
        r -= 1
        rows[:, j] = 97 + r % 26
        r //= 26
    sent_end = np.cumsum(sent_len) - 1
    doc_end = sent_end[np.cumsum(sents_per_doc) - 1]
    every = np.arange(n)
    rows[every, length] = ord(" ")
    rows[sent_end, length[sent_end]] = ord(".")
    rows[sent_end, length[sent_end] + 1] = ord(" ")
    rows[doc_end, length[doc_end] + 1] = ord("\n")
    size = length + 1
    size[sent_end] += 1
    return rows[np.arange(rows.shape[1]) < size[:, None]].tobytes(), ranks


def write_zipf(fh, target: int, rng: np.random.Generator) -> dict:
    written = words = 0
    seen = np.zeros(1 << 16, dtype=bool)
    while written < target:
        block, ranks = zipf_block(rng, words, 40_000)
        if ranks.max() >= len(seen):
            seen = np.concatenate([seen, np.zeros(2 * int(ranks.max()) - len(seen), dtype=bool)])
        seen[ranks] = True
        fh.write(block)
        written += len(block)
        words += len(ranks)
    return {"bytes": written, "words": words, "distinct_words": int(seen.sum())}


def make_corpus(work: Path, text: str, gb: float, seed: int = 0) -> tuple[Path, dict]:
    """The seeded corpus of about ``gb`` GB (reused when already written), and what it holds."""
    path = work / f"corpus-{text}-{gb:g}GB.txt"
    info_path = path.with_suffix(".json")
    if path.is_file() and info_path.is_file():
        return path, json.loads(info_path.read_text())
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as fh:
        info = (write_zipf if text == "zipf" else write_sentences)(fh, int(gb * 1e9), np.random.default_rng(seed))
    tmp.rename(path)
    info["write_seconds"] = round(time.perf_counter() - t, 1)
    info_path.write_text(json.dumps(info))
    say(f"corpus {path.name}: {info['bytes'] / 1e6:,.0f} MB"
        + (f", {info['words']:,} words, {info['distinct_words']:,} distinct" if "words" in info else "")
        + f" ({info['write_seconds']:.0f} s to write)")
    return path, info


# --- measuring ----------------------------------------------------------------------------------

def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _role(proc, main_pid: int) -> str:
    if proc.pid == main_pid:
        return "main"
    try:
        cmd = " ".join(proc.cmdline())
    except Exception:  # noqa: BLE001 - gone, or not ours to read
        return "other"
    return "resource tracker" if "resource_tracker" in cmd else "worker"


def measure(cmd: list[str], *, pythonpath: Path = REPO, cwd: Path, env: dict | None = None,
            cap_mb: float | None = None, timeout: float | None = None, markers: tuple[str, ...] = ()) -> dict:
    """Run ``cmd``, sampling its process tree's memory; stop it above ``cap_mb`` summed RSS or after
    ``timeout`` seconds. ``markers``: stderr substrings whose first time is recorded, with the peak
    summed RSS reached before it."""
    import psutil

    load_before = load()
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                             env={**os.environ, "PYTHONPATH": str(pythonpath), **(env or {})})
    streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
    marks: dict[str, float] = {}

    def pump(name: str) -> None:
        for line in getattr(child, name):
            streams[name].append(line)
            for m in markers:
                if m in line and m not in marks:
                    marks[m] = time.perf_counter() - t0

    readers = [threading.Thread(target=pump, args=(n,), daemon=True) for n in streams]
    for r in readers:
        r.start()
    proc = psutil.Process(child.pid)
    peak_rss = peak_pss = 0
    per_proc: dict[int, tuple[str, int]] = {}
    before: dict[str, int] = {}
    stopped = None
    while child.poll() is None:
        rss = pss = 0
        try:
            tree = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in tree:
            try:
                info = p.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
            role, top = per_proc.get(p.pid, (None, 0))
            per_proc[p.pid] = (role or _role(p, child.pid), max(top, info.rss))
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        for m in markers:
            if m not in marks:
                before[m] = peak_rss
        elapsed = time.perf_counter() - t0
        if (cap_mb and rss > cap_mb * 2**20) or (timeout and elapsed > timeout):
            stopped = {"rss_mb": rss / 2**20, "seconds": elapsed,
                       "why": "RSS cap" if cap_mb and rss > cap_mb * 2**20 else "timeout"}
            for p in reversed(tree):
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
            break
        time.sleep(0.25)
    child.wait()
    for r in readers:
        r.join(timeout=5)
    seconds = time.perf_counter() - t0
    stdout, stderr = "".join(streams["stdout"]), "".join(streams["stderr"])
    if child.returncode != 0 and stopped is None:
        sys.exit(f"{' '.join(cmd)} failed ({child.returncode}):\n{stderr[-3000:]}")
    workers = [top for role, top in per_proc.values() if role == "worker"]
    return {"seconds": seconds, "peak_rss_mb": peak_rss / 2**20, "peak_pss_mb": peak_pss / 2**20,
            "main_peak_mb": max((top for role, top in per_proc.values() if role == "main"), default=0) / 2**20,
            "worker_peak_mb": max(workers, default=0) / 2**20, "workers": len(workers),
            "marks": marks, "peak_rss_before_mb": {m: v / 2**20 for m, v in before.items() if m in marks},
            "stopped": stopped, "stdout": stdout, "stderr": stderr, "load_before": load_before, "load_after": load()}


def json_tail(stdout: str) -> dict:
    return json.loads(stdout[stdout.index("{"):])


def nlpkit_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "nlpkit", "pretrain", *args]


# --- (a) memory -----------------------------------------------------------------------------------

def memory_sizes(args, sizes: list[float]) -> list[dict]:
    rows = []
    for gb in sizes:
        corpus, info = make_corpus(args.work, args.text, gb)
        out = args.work / f"out-{args.text}-{gb:g}GB"
        shutil.rmtree(out, ignore_errors=True)
        r = measure(nlpkit_cmd(str(corpus), "--out", str(out), "--prepare-only", "--json", "--vocab-size",
                               str(args.vocab_size), "--tokenizer-sample-docs", str(args.sample_docs),
                               "--num-proc", str(args.num_proc)), cwd=args.work, env=args.env)
        st = json_tail(r["stdout"])["store"]
        row = {"side": "nlpkit `--prepare-only`", "corpus_mb": info["bytes"] / 1e6, "info": info,
               "tokens": st["train_tokens"] + st["heldout_tokens"], "build_seconds": st["build_seconds"], **r}
        rows.append(row)
        say(f"{gb:g} GB: {r['seconds']:.0f} s (store {st['build_seconds']:.0f} s), peak RSS sum {r['peak_rss_mb']:,.0f} MB "
            f"(main {r['main_peak_mb']:,.0f}, largest worker {r['worker_peak_mb']:,.0f}), load {r['load_before']} -> "
            f"{r['load_after']}")
        shutil.rmtree(out, ignore_errors=True)
    return rows


def memory_old(args, gb: float) -> dict:
    """The old in-memory ``pretrain`` (tokenizer trained on every document, as it did) up to one step."""
    corpus, info = make_corpus(args.work, args.text, gb)
    out = args.work / "out-old"
    shutil.rmtree(out, ignore_errors=True)
    r = measure(nlpkit_cmd(str(corpus), "--out", str(out), "--vocab-size", str(args.vocab_size), "--steps", "1",
                           "--eval-every", "1000", "--save-every", "1000", "--json"),
                pythonpath=args.old_path, cwd=args.work, env=args.env, cap_mb=args.rss_cap_gb * 1024,
                timeout=args.old_timeout, markers=("corpus:", "model "))
    shutil.rmtree(out, ignore_errors=True)
    say(f"old path {gb:g} GB: {r['seconds']:.0f} s, peak RSS sum {r['peak_rss_mb']:,.0f} MB, stopped {r['stopped']}, "
        f"marks {r['marks']}, load {r['load_before']} -> {r['load_after']}")
    return {"side": f"old in-memory `pretrain` ({args.old_path.name}), to step 1", "corpus_mb": info["bytes"] / 1e6,
            "info": info, "tokens": None, "build_seconds": None, **r}


def print_memory(rows: list[dict]) -> None:
    print("\n| command | corpus | words (distinct) | tokens | wall s | peak RSS sum | peak PSS sum | main process "
          "| largest worker | load before/after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        info = r["info"]
        words = f"{info['words'] / 1e6:,.0f} M ({info['distinct_words'] / 1e3:,.0f} k)" if "words" in info else "-"
        tokens = f"{r['tokens'] / 1e6:,.0f} M" if r["tokens"] else "-"
        wall = f"{r['seconds']:,.0f}" + (f" (store {r['build_seconds']:,.0f})" if r["build_seconds"] else "")
        peak = f"{r['peak_rss_mb']:,.0f} MB"
        if r["stopped"]:
            peak = f"> {r['stopped']['rss_mb']:,.0f} MB at {r['stopped']['seconds']:.0f} s ({r['stopped']['why']})"
        for m, t in r.get("marks", {}).items():
            peak += f"; {r['peak_rss_before_mb'][m]:,.0f} MB before {m.strip(':').strip()!r} at {t:.0f} s"
        workers = f"{r['worker_peak_mb']:,.0f} MB (x{r['workers']})" if r["workers"] else "-"
        print(f"| {r['side']} | {r['corpus_mb']:,.0f} MB | {words} | {tokens} | {wall} | {peak} | "
              f"{r['peak_pss_mb']:,.0f} MB | {r['main_peak_mb']:,.0f} MB | {workers} | "
              f"{r['load_before']} / {r['load_after']} |")
    new = [r for r in rows if r["side"].startswith("nlpkit")]
    if len(new) >= 2:
        lo, hi = min(new, key=lambda r: r["corpus_mb"]), max(new, key=lambda r: r["corpus_mb"])
        print(f"\npeak RSS sum, {hi['corpus_mb']:,.0f} MB / {lo['corpus_mb']:,.0f} MB corpus: "
              f"{hi['peak_rss_mb'] / lo['peak_rss_mb']:.3f} (target < 1.2); largest corpus "
              f"{hi['peak_rss_mb']:,.0f} MB (target < 2,048 MB)")
    old = [r for r in rows if not r["side"].startswith("nlpkit")]
    if old and new:
        same = [r for r in new if abs(r["corpus_mb"] - old[0]["corpus_mb"]) < 1]
        if same:
            print(f"old / nlpkit peak RSS sum on {old[0]['corpus_mb']:,.0f} MB: "
                  f"{old[0]['peak_rss_mb'] / same[0]['peak_rss_mb']:.1f}x")


# --- (b) tokenisation throughput ----------------------------------------------------------------

TRAIN_TOKENIZER = r"""
import sys
from itertools import islice
from nlpkit.hf.tokenizer import train_wordpiece
corpus, out, vocab, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(corpus, encoding="utf-8") as fh:
    texts = [t.strip() for t in islice(fh, n) if t.strip()]
tok = train_wordpiece(texts, vocab)
tok.model_max_length = 128
tok.save_pretrained(out)
"""

OLD_ENCODE = r"""
import json, sys, time
from nlpkit.hf.tokenizer import encode_docs, load_tokenizer
from nlpkit.pretrain.corpus import read_corpus
corpus_path, tok_dir = sys.argv[1], sys.argv[2]
tok = load_tokenizer(tok_dir)
t0 = time.perf_counter()
corpus = read_corpus(corpus_path)
t1 = time.perf_counter()
train_ids = encode_docs(tok, corpus.train)
held_ids = encode_docs(tok, corpus.heldout)
t2 = time.perf_counter()
print(json.dumps({"read_s": t1 - t0, "encode_s": t2 - t1, "documents": len(train_ids) + len(held_ids),
                  "tokens": sum(map(len, train_ids)) + sum(map(len, held_ids))}))
"""

DATASETS_SIDE = r"""
import json, sys, time
from datasets import load_dataset
from transformers import AutoTokenizer
corpus, tok_dir, num_proc = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(tok_dir)
t0 = time.perf_counter()
ds = load_dataset("text", data_files=corpus, split="train")
t1 = time.perf_counter()
ds = ds.filter(lambda b: [bool(t.strip()) for t in b["text"]], batched=True, num_proc=num_proc)
t2 = time.perf_counter()
out = ds.map(lambda b: {"input_ids": tok(b["text"], add_special_tokens=False)["input_ids"]}, batched=True,
             num_proc=num_proc, remove_columns=["text"])
t3 = time.perf_counter()
tokens = sum(len(x) for x in out.with_format("numpy")["input_ids"][:1000])
print(json.dumps({"load_s": t1 - t0, "filter_s": t2 - t1, "map_s": t3 - t2, "documents": len(out)}))
"""


def ensure_tokenizer(args, corpus: Path) -> Path:
    """One WordPiece tokenizer (nlpkit's trainer, first ``--sample-docs`` documents) for every side."""
    out = args.work / f"tokenizer-{corpus.stem}"
    if not (out / "tokenizer.json").is_file():
        subprocess.run([sys.executable, "-c", TRAIN_TOKENIZER, str(corpus), str(out), str(args.vocab_size),
                        str(args.sample_docs)], check=True, cwd=args.work, env={**os.environ, "PYTHONPATH": str(REPO)})
    return out


def throughput(args, gb: float) -> list[dict]:
    corpus, info = make_corpus(args.work, args.text, gb)
    mb = info["bytes"] / 1e6
    tok = ensure_tokenizer(args, corpus)
    rows = []

    out, store = args.work / "out-tp", args.work / "store-tp"
    for p in (out, store):
        shutil.rmtree(p, ignore_errors=True)
    r = measure(nlpkit_cmd(str(corpus), "--out", str(out), "--prepare-only", "--json", "--tokenizer", str(tok),
                           "--store", str(store), "--num-proc", str(args.num_proc)), cwd=args.work, env=args.env)
    st = json_tail(r["stdout"])["store"]
    rows.append({"side": f"nlpkit token store (`--prepare-only --num-proc {args.num_proc}`)", "mb": mb,
                 "work_s": st["build_seconds"], "work": "store build (count pass, read, tokenise, write)",
                 "tokens": st["train_tokens"] + st["heldout_tokens"], **r})
    for p in (out, store):
        shutil.rmtree(p, ignore_errors=True)
    say(f"store: build {st['build_seconds']:.1f} s, wall {r['seconds']:.1f} s, load {r['load_before']} -> {r['load_after']}")

    if args.old_path:
        r = measure([sys.executable, "-c", OLD_ENCODE, str(corpus), str(tok)], pythonpath=args.old_path, cwd=args.work,
                    env=args.env, cap_mb=args.rss_cap_gb * 1024)
        if r["stopped"]:
            say(f"old encode stopped: {r['stopped']}")
        else:
            o = json_tail(r["stdout"])
            rows.append({"side": "old in-memory `encode_docs` (one `encode_batch`, Rayon threads)", "mb": mb,
                         "work_s": o["encode_s"], "work": f"encode only (read before: {o['read_s']:.0f} s)",
                         "tokens": o["tokens"], "read_s": o["read_s"], **r})
            say(f"old encode: {o['encode_s']:.1f} s (+ read {o['read_s']:.1f} s), wall {r['seconds']:.1f} s")

    cache = args.work / "hf-cache"
    shutil.rmtree(cache, ignore_errors=True)
    r = measure([sys.executable, "-c", DATASETS_SIDE, str(corpus), str(tok), str(args.num_proc)], cwd=args.work,
                env={**args.env, "HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
                     "TOKENIZERS_PARALLELISM": "false"})
    d = json_tail(r["stdout"])
    shutil.rmtree(cache, ignore_errors=True)
    rows.append({"side": f"`datasets` load_dataset + filter + map(batched, num_proc={args.num_proc})", "mb": mb,
                 "work_s": d["load_s"] + d["filter_s"] + d["map_s"],
                 "work": f"load {d['load_s']:.0f} + filter {d['filter_s']:.0f} + map {d['map_s']:.0f} s",
                 "tokens": None, **r})
    say(f"datasets: {d}, wall {r['seconds']:.1f} s")
    return rows


def print_throughput(rows: list[dict]) -> None:
    print("\n| side | timed work | s | MB/s | wall s (whole command) | wall MB/s | peak RSS sum | load before/after |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['side']} | {r['work']} | {r['work_s']:,.1f} | {r['mb'] / r['work_s']:.2f} | {r['seconds']:,.1f} | "
              f"{r['mb'] / r['seconds']:.2f} | {r['peak_rss_mb']:,.0f} MB | {r['load_before']} / {r['load_after']} |")
    store = rows[0]
    for r in rows[1:]:
        what = "old encode" if "old" in r["side"] else "datasets"
        target = "target >= 1" if what == "old encode" else "target >= 0.9"
        extra = ""
        if "read_s" in r:
            extra = f"; against its read + encode {r['work_s'] + r['read_s']:.1f} s: " \
                    f"{(r['work_s'] + r['read_s']) / store['work_s']:.2f}x"
        print(f"store MB/s / {what} MB/s: {r['work_s'] / store['work_s']:.2f}x ({target}); whole commands: "
              f"{r['seconds'] / store['seconds']:.2f}x{extra}")


# --- (c) training tokens/s ----------------------------------------------------------------------

def training(args) -> list[dict]:
    corpus, info = make_corpus(args.work, args.text, args.train_gb)
    tok = ensure_tokenizer(args, corpus)
    store = args.work / "store-train"
    shutil.rmtree(store, ignore_errors=True)
    common = ["--tokenizer", str(tok), "--size", args.size, "--max-length", "128", "--steps", str(args.train_steps),
              "--eval-every", "100000", "--save-every", "100000", "--json"]
    order = []
    for i in range(args.train_rounds):
        order += ["old", "new"] if i % 2 == 0 else ["new", "old"]
    rows = []
    for i, side in enumerate(order):
        out = args.work / f"out-train-{i}"
        shutil.rmtree(out, ignore_errors=True)
        if side == "old":
            r = measure(nlpkit_cmd(str(corpus), "--out", str(out), *common), pythonpath=args.old_path, cwd=args.work,
                        env=args.env)
        else:
            r = measure(nlpkit_cmd(str(corpus), "--out", str(out), *common, "--store", str(store), "--num-proc",
                                   str(args.num_proc)), cwd=args.work, env=args.env)
        rep = json_tail(r["stdout"])
        tp = rep["throughput"]
        rows.append({"side": side, "round": i, "mb": info["bytes"] / 1e6, "steps": rep["steps"],
                     "tokens_per_s": tp["tokens_per_s"], "train_s": tp.get("train_seconds"),
                     "precision": tp.get("precision"), **r})
        say(f"training {side}: {tp['tokens_per_s']:,.0f} tokens/s over {rep['steps']} steps, wall {r['seconds']:.0f} s, "
            f"load {r['load_before']} -> {r['load_after']}")
        shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(store, ignore_errors=True)
    return rows


def print_training(rows: list[dict]) -> None:
    print("\n| run | path | steps | tokens/s | training s | wall s | peak RSS sum | load before/after |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        path = "old in-memory blocks" if r["side"] == "old" else "nlpkit token store"
        train_s = f"{r['train_s']:.1f}" if r["train_s"] else "-"
        print(f"| {r['round'] + 1} | {path} | {r['steps']} | {r['tokens_per_s']:,.0f} | {train_s} | "
              f"{r['seconds']:.0f} | {r['peak_rss_mb']:,.0f} MB | {r['load_before']} / {r['load_after']} |")
    old = [r["tokens_per_s"] for r in rows if r["side"] == "old"]
    new = [r["tokens_per_s"] for r in rows if r["side"] == "new"]
    print(f"store / old tokens/s: mean {np.mean(new) / np.mean(old):.3f} (target >= 1; per pair: "
          + ", ".join(f"{n / o:.3f}" for n, o in zip(new, old)) + ")")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="0.3", help="corpus sizes in GB for --prepare-only's memory, comma-separated "
                    "('' for none)")
    ap.add_argument("--text", choices=("zipf", "sentences"), default="zipf")
    ap.add_argument("--num-proc", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--sample-docs", type=int, default=20_000, help="documents the tokenizer is trained on")
    ap.add_argument("--old-path", type=Path, help="an older nlpkit tree (the in-memory path) to measure beside")
    ap.add_argument("--old-gb", type=float, help="also measure the old path's memory on a corpus of this size")
    ap.add_argument("--rss-cap-gb", type=float, default=18.0, help="stop the old path above this summed RSS")
    ap.add_argument("--old-timeout", type=float, default=1800.0)
    ap.add_argument("--throughput", action="store_true", help="tokenisation throughput: store, old path, datasets")
    ap.add_argument("--throughput-gb", type=float, default=0.3)
    ap.add_argument("--training", action="store_true", help="training tokens/s: store against the old path")
    ap.add_argument("--train-gb", type=float, default=0.03)
    ap.add_argument("--train-steps", type=int, default=40)
    ap.add_argument("--train-rounds", type=int, default=2, help="pairs of runs (ABBA order)")
    ap.add_argument("--size", default="mini", help="model preset of the training runs")
    ap.add_argument("--work", type=Path, default=Path("/tmp/nlpkit-store-bench"))
    ap.add_argument("--keep", action="store_true", help="keep the corpora under --work")
    args = ap.parse_args()
    if args.training and not args.old_path:
        ap.error("--training compares against the old path: pass --old-path")
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    args.env = {"NLPKIT_RUNS_DIR": str(args.work / "runs")}
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")),
                 platform.processor() or platform.machine())
    print(f"machine: {model}, {os.cpu_count()} cores; load average at start {load()}; --text {args.text}, "
          f"--num-proc {args.num_proc}, vocabulary {args.vocab_size}, tokenizer sample {args.sample_docs} documents",
          flush=True)
    sizes = [float(s) for s in args.sizes.split(",") if s.strip()]
    if args.old_gb and not args.old_path:
        ap.error("--old-gb measures the old path: pass --old-path")
    if sizes or args.old_gb:
        rows = memory_sizes(args, sizes)
        if args.old_gb:
            rows.append(memory_old(args, args.old_gb))
        print_memory(rows)
        sys.stdout.flush()
    if args.throughput:
        print_throughput(throughput(args, args.throughput_gb))
        sys.stdout.flush()
    if args.training:
        print_training(training(args))
    print(f"\nload average at the end {load()}")
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()

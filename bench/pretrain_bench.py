"""nlpkit pretrain vs the run_mlm.py way (HF Trainer + DataCollatorForLanguageModeling), same model and data.

Both sides train the same BERT config (preset dims, vocabulary, max length), on the same packed
blocks of the same corpus with the same tokenizer (trained once, passed to nlpkit as --tokenizer),
batch size, learning rate and schedule, for a fixed number of steps.  Each repeat runs each side in a fresh subprocess (clean peak-memory
figures), alternating which side goes first, so that machine load hits both alike; medians are
reported.  Throughput is measured over the steps after the first ``--skip`` (warm-up excluded) on
both sides; the final held-out MLM loss of both models is measured by the same function on the
same held-out blocks and masks.

    python bench/pretrain_bench.py --size mini --max-length 128 --steps 60 --repeats 3 --threads 2
    python bench/pretrain_bench.py --peak-flops 989e12      # on a GPU: also MFU

MFU = model FLOPs per token × tokens/s ÷ the device's peak. Model FLOPs per token of a BERT MLM
training step (forward + backward = 3 × forward; PaLM's appendix B count, Chowdhery et al. 2022):
6 · L · (4H² + 2HI) for the encoder's matrix products, 12 · L · H · S for attention's scores and
weighted sums, and 6 · p · (H² + V·H) for the LM head on the masked share p of the tokens — the head
work the task needs, which is what nlpkit computes (a Trainer computing the head on every position
does more work than this, none of it counted). Embedding lookups, norms and biases are not counted.
``--peak-flops``: the datasheet's dense bf16 peak (H100 SXM and H200: 989e12).

Data: ../shared/data/reuters21578 train texts when present, else data/reuters_sample.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def default_corpus() -> Path:
    shared = REPO.parent / "shared" / "data" / "reuters21578"
    for cand in (shared / "train.jsonl", shared / "split" / "train.jsonl"):
        if cand.exists():
            return cand
    if shared.exists():
        found = sorted(shared.rglob("*train*.jsonl"))
        if found:
            return found[0]
    return REPO / "data" / "reuters_sample.jsonl"


def peak_memory_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --- workers (one side per subprocess) ----------------------------------------------------------

def model_flops_per_token(cfg, vocab_size: int) -> float:
    """Training FLOPs per token of the BERT MLM in ``cfg`` (see the module docstring)."""
    h, i, layers, seq = cfg.hidden, cfg.intermediate or 4 * cfg.hidden, cfg.layers, cfg.max_length
    return (6 * layers * (4 * h * h + 2 * h * i) + 12 * layers * h * seq
            + 6 * cfg.mlm_prob * (h * h + vocab_size * h))


def _prepare(args):
    """Config, tokenizer (from the nlpkit run folder, so both sides share it) and data blocks."""
    import torch

    from nlpkit.pretrain import PretrainConfig
    from nlpkit.pretrain.corpus import read_corpus
    from nlpkit.hf.tokenizer import encode_docs, load_tokenizer
    from nlpkit.pretrain.packing import pack

    cfg = PretrainConfig(corpus=args.corpus, out=str(Path(args.workdir) / "nlpkit"), size=args.size,
                         vocab_size=args.vocab_size, max_length=args.max_length, batch_size=args.batch_size,
                         steps=args.steps, eval_every=10**9, save_every=10**9, threads=args.threads, seed=args.seed,
                         lr=args.lr, log_every=1, precision=args.precision, compile=args.compile,
                         tokenizer=str(Path(args.workdir) / "tokenizer")).validate()
    tok = load_tokenizer(Path(args.workdir) / "tokenizer")
    corpus = read_corpus(cfg.corpus, heldout_docs=cfg.heldout_docs, seed=cfg.seed)
    held = pack(encode_docs(tok, corpus.heldout), cfg.max_length)[: cfg.eval_blocks]
    torch.set_num_threads(args.threads)
    return cfg, tok, corpus, held


def worker_nlpkit(args) -> dict:

    from nlpkit.pretrain import pretrain
    from nlpkit.pretrain.train import evaluate_mlm

    cfg, tok, corpus, held = _prepare(args)
    res = pretrain(cfg, overwrite=True, record_run=False)
    train = res.history["train"]
    t_skip = next(r["elapsed"] for r in train if r["step"] == args.skip)
    t_end, tokens = train[-1]["elapsed"], (train[-1]["step"] - args.skip) * res.report["throughput"]["tokens_per_step"]
    device = next(res.model.parameters()).device
    from contextlib import nullcontext

    loss = evaluate_mlm(res.model, held, cfg=cfg, vocab_size=len(tok), device=device, autocast=nullcontext())
    return {"side": f"nlpkit-{res.report['throughput']['precision']}", "tokens_per_s": tokens / (t_end - t_skip), "final_heldout_loss": loss,
            "train_curve": [(r["step"], r["tokens"], r["loss"]) for r in train],
            "params": res.report["throughput"]["params"], "peak_mem_mb": peak_memory_mb(device),
            "flops_per_token": model_flops_per_token(cfg, len(tok)), "device": str(device)}


def worker_trainer(args) -> dict:
    """The run_mlm.py recipe: tokenize each document, group_texts into max-length blocks,
    DataCollatorForLanguageModeling(mlm_probability=0.15), BertForMaskedLM, Trainer."""
    import torch
    from transformers import (BertConfig, BertForMaskedLM, DataCollatorForLanguageModeling, Trainer,
                              TrainerCallback, TrainingArguments)

    from nlpkit.pretrain.train import evaluate_mlm
    from nlpkit.training.precision import autocast_for

    cfg, tok, corpus, held = _prepare(args)
    # run_mlm.py: tokenize (with [CLS] ... [SEP] per document), then group_texts
    ids = tok(corpus.train, return_attention_mask=False, return_token_type_ids=False)["input_ids"]
    concat = [t for doc in ids for t in doc]
    n = len(concat) // cfg.max_length
    blocks = [concat[i * cfg.max_length:(i + 1) * cfg.max_length] for i in range(n)]
    dataset = [{"input_ids": b} for b in blocks]
    torch.manual_seed(cfg.seed)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=cfg.hidden, num_hidden_layers=cfg.layers,
                                       num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate,
                                       max_position_embeddings=cfg.max_length, pad_token_id=0))
    times: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()  # the step's kernels have run before its clock stops
            times[state.global_step] = time.perf_counter()

    targs = TrainingArguments(
        output_dir=str(Path(args.workdir) / "trainer"), max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr, warmup_steps=int(cfg.warmup * cfg.steps), weight_decay=cfg.weight_decay,
        adam_beta1=cfg.beta1, adam_beta2=cfg.beta2, adam_epsilon=1e-6, max_grad_norm=cfg.clip,
        lr_scheduler_type="linear", logging_steps=10, save_strategy="no", report_to=[], seed=cfg.seed,
        dataloader_num_workers=0, disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
        # run_mlm.py's default is fp32 on CPU; "trainer-bf16" is a careful user's Trainer: bf16 wherever
        # nlpkit's --precision auto would use it (the same rule, autocast_for)
        bf16=torch.cuda.is_available() or (args.worker == "trainer-bf16" and
                                           autocast_for("auto", torch.device("cpu"))[1] == "bf16"),
        torch_compile=args.compile,
    )
    collator = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=cfg.mlm_prob)
    trainer = Trainer(model=model, args=targs, train_dataset=dataset, data_collator=collator, callbacks=[Clock()])
    trainer.train()
    tokens = (cfg.steps - args.skip) * cfg.batch_size * cfg.max_length
    curve = [(h["step"], h["step"] * cfg.batch_size * cfg.max_length, h["loss"]) for h in trainer.state.log_history
             if "loss" in h]
    model.eval()
    from contextlib import nullcontext

    device = next(model.parameters()).device
    loss = evaluate_mlm(model, held, cfg=cfg, vocab_size=len(tok), device=device, autocast=nullcontext())
    return {"side": args.worker, "precision": "bf16" if targs.bf16 else "fp32",
            "tokens_per_s": tokens / (times[cfg.steps] - times[args.skip]),
            "final_heldout_loss": loss, "train_curve": curve, "params": sum(p.numel() for p in model.parameters()),
            "peak_mem_mb": peak_memory_mb(device), "flops_per_token": model_flops_per_token(cfg, len(tok)),
            "device": str(device)}


# --- driver -------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--size", default="mini")
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--skip", type=int, default=5, help="warm-up steps excluded from tokens/s")
    ap.add_argument("--sides", default="nlpkit,trainer",
                    help="comma list of nlpkit (precision auto), nlpkit-fp32, trainer (fp32, the run_mlm.py default), "
                         "trainer-bf16 (bf16 where nlpkit's --precision auto would use it)")
    ap.add_argument("--precision", default="auto", help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peak-flops", type=float, default=None, help="device peak FLOP/s for MFU (e.g. 989e12 bf16 H100/H200)")
    ap.add_argument("--compile", action="store_true", help="torch.compile on both sides (nlpkit --compile, "
                    "Trainer torch_compile=True)")
    ap.add_argument("--json", default=None, help="write all results here")
    ap.add_argument("--worker", choices=["nlpkit", "nlpkit-fp32", "trainer", "trainer-bf16"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.corpus = args.corpus or str(default_corpus())

    if args.worker:
        if args.worker == "nlpkit-fp32":
            args.precision = "fp32"
        fn = worker_nlpkit if args.worker.startswith("nlpkit") else worker_trainer
        print("RESULT " + json.dumps(fn(args)), flush=True)
        return

    from nlpkit.pretrain.corpus import read_corpus
    from nlpkit.hf.tokenizer import train_wordpiece

    work = Path(tempfile.mkdtemp(prefix="pretrain-bench-"))
    corpus = read_corpus(args.corpus, seed=args.seed)
    tok = train_wordpiece(corpus.train, args.vocab_size)
    tok.save_pretrained(work / "tokenizer")
    load = os.getloadavg()
    print(f"corpus {args.corpus}: {len(corpus.train)} docs; {args.size}, length {args.max_length}, batch "
          f"{args.batch_size}, {args.steps} steps x {args.repeats} repeats, {args.threads} threads; "
          f"load average {load[0]:.1f}", file=sys.stderr)
    sides = args.sides.split(",")
    results: dict[str, list[dict]] = {s: [] for s in sides}
    for r in range(args.repeats):
        order = sides if r % 2 == 0 else sides[::-1]
        for side in order:
            cmd = [sys.executable, __file__, "--worker", side, "--workdir", str(work), "--corpus", args.corpus,
                   "--size", args.size, "--vocab-size", str(args.vocab_size), "--max-length", str(args.max_length),
                   "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--steps", str(args.steps),
                   "--skip", str(args.skip), "--threads", str(args.threads), "--seed", str(args.seed)]
            cmd += ["--compile"] if args.compile else []
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"{side} worker failed:\n{proc.stderr[-3000:]}")
            res = json.loads(line[len("RESULT "):])
            results[side].append(res)
            print(f"repeat {r} {side:8s} {res['tokens_per_s']:9.0f} tok/s  held-out loss {res['final_heldout_loss']:.4f}"
                  f"  peak mem {res['peak_mem_mb']:.0f} MB  (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
    med = {s: {k: statistics.median(x[k] for x in results[s]) for k in ("tokens_per_s", "final_heldout_loss", "peak_mem_mb")}
           for s in results}
    base = results["trainer"] if "trainer" in results else results[sides[-1]]
    ratios = {s: [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(results[s], base)] for s in sides}
    if "trainer-bf16" in results:  # against the careful Trainer too
        ratios.update({f"{s} / trainer-bf16": [a["tokens_per_s"] / b["tokens_per_s"]
                                               for a, b in zip(results[s], results["trainer-bf16"])]
                       for s in sides if s.startswith("nlpkit")})
    summary = {"config": {k: v for k, v in vars(args).items() if k not in ("worker", "workdir")},
               "load_average_start": load, "load_average_end": os.getloadavg(), "median": med,
               "speedup_median": {s: statistics.median(v) for s, v in ratios.items()},
               "speedup_per_repeat": ratios, "params": results[sides[0]][0]["params"], "results": results}
    if args.peak_flops:
        for s in med:
            med[s]["mfu"] = results[s][0]["flops_per_token"] * med[s]["tokens_per_s"] / args.peak_flops
    print(json.dumps({k: summary[k] for k in ("median", "speedup_median", "speedup_per_repeat")}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()

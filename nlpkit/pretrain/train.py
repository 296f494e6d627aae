"""``pretrain(config)``: corpus -> WordPiece tokenizer -> packed blocks -> MLM training loop -> HF folder + run.

Output layout of ``config.out`` (DIR):

    DIR/                    the final model = the best held-out checkpoint: config.json,
                            model.safetensors, tokenizer.json, tokenizer_config.json
                            (AutoModelForMaskedLM / AutoTokenizer / AutoModelForSequenceClassification load it)
    DIR/last/               the same files for the weights after the last step
    DIR/checkpoints/checkpoint.safetensors   training state for --resume (model, optimizer, step, data position, RNG)
    DIR/pretrain_config.json        the resolved PretrainConfig
    DIR/pretrain.json               corpus report, fertility, loss curves, throughput

The loop is nanoGPT-style straight-line code.  Under ``torchrun``/``accelerate launch`` it runs
data-parallel (DDP): the global batch is ``batch_size x grad_accum x world_size`` blocks, each
rank reads a disjoint slice of every global batch, only rank 0 logs and writes files.
"""

from __future__ import annotations

import functools

import json
import math
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nlpkit._io import (atomic_write_text, is_full_disk, naming, owned_temp_dir, save_pretrained)
from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.state_file import load_state, save_state
from nlpkit.pretrain.config import CONFIG_FILE_NAME, PRESETS, PretrainConfig, option_name
from nlpkit.pretrain.corpus import Corpus, corpus_report, read_corpus
from nlpkit.pretrain.model import (MaskedLMWrapper, TokenIds, build_model, make_optimizer, mask_tokens,
                                   set_finetune_dropout, word_start_table)
from nlpkit.pretrain.tokenizer import check_vocab_fits, encode_docs, fertility, load_tokenizer, train_wordpiece, unigram_entropy

CHECKPOINT = Path("checkpoints") / "checkpoint.safetensors"
# Written by nlpkit before checkpoints were pickle-free; it is never loaded (--resume says so).
OLD_CHECKPOINT = Path("checkpoints") / "checkpoint.pt"
CONFIG_FILE = CONFIG_FILE_NAME
REPORT_FILE = "pretrain.json"
EVAL_SEED_OFFSET = 7919  # eval masks are fixed for the whole run, so eval losses compare across steps


@dataclass
class PretrainResult:
    """What ``pretrain`` produced (rank 0 holds the full picture; other ranks get the same paths)."""

    out: Path
    report: dict
    run_name: str | None = None
    model: object | None = None  # the trained HF model (last weights), for callers and tests
    history: dict = field(default_factory=dict)


# --- distributed --------------------------------------------------------------------------------

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """Read RANK/WORLD_SIZE/LOCAL_RANK (torchrun, accelerate launch) and join the process group:
    NCCL on GPU, gloo on CPU.  Single process when WORLD_SIZE is absent or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if world > 1:
        import torch.distributed as td

        if cuda:
            torch.cuda.set_device(device)
        if not td.is_initialized():
            td.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(rank=rank, world=world, local_rank=local, device=device)


def _barrier(dist: Dist) -> None:
    if dist.world > 1:
        torch.distributed.barrier()


def _max_over_ranks(value: float, dist: Dist) -> float:
    """The largest ``value`` over all ranks (so a time budget ends on the same step everywhere)."""
    t = torch.tensor([value], dtype=torch.float64, device=dist.device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t.item())


# --- data ---------------------------------------------------------------------------------------

def pack(docs_ids: list[list[int]], max_length: int, ids_of: TokenIds = TokenIds()) -> torch.Tensor:
    """Concatenate documents with [SEP] after each and cut the stream into blocks of ``max_length``
    starting with [CLS] (run_mlm.py's group_texts): no padding anywhere, the tail is dropped."""
    CLS, SEP = ids_of.cls, ids_of.sep  # noqa: N806
    body = max_length - 1
    total = sum(len(d) + 1 for d in docs_ids)
    stream = np.empty(total, dtype=np.int64)
    pos = 0
    for d in docs_ids:
        stream[pos:pos + len(d)] = d
        stream[pos + len(d)] = SEP
        pos += len(d) + 1
    n = total // body
    blocks = np.empty((n, max_length), dtype=np.int64)
    blocks[:, 0] = CLS
    blocks[:, 1:] = stream[: n * body].reshape(n, body)
    return torch.from_numpy(blocks)


class BlockSampler:
    """Seeded epoch-wise shuffling of packed blocks with an explicit position (epoch, cursor).

    Each call hands out one micro-batch of ``batch`` blocks per rank: rank r takes rows
    ``[r*batch, (r+1)*batch)`` of the next ``batch*world`` blocks of the epoch's permutation, so
    ranks never share a block.  The position is all a checkpoint needs to continue exactly.
    """

    def __init__(self, n_blocks: int, batch: int, dist: Dist, seed: int, epoch: int = 0, cursor: int = 0):
        self.n, self.batch, self.dist, self.seed = n_blocks, batch, dist, seed
        self.epoch, self.cursor = epoch, cursor
        self._perm_epoch, self._perm = None, None

    @property
    def per_global_micro(self) -> int:
        return self.batch * self.dist.world

    @property
    def micro_per_epoch(self) -> int:
        return self.n // self.per_global_micro

    def next_indices(self) -> np.ndarray:
        if self.cursor + self.per_global_micro > self.n:
            self.epoch, self.cursor = self.epoch + 1, 0
        if self._perm_epoch != self.epoch:
            self._perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
            self._perm_epoch = self.epoch
        start = self.cursor + self.dist.rank * self.batch
        idx = self._perm[start:start + self.batch]
        self.cursor += self.per_global_micro
        return idx


def _step_generator(seed: int, step: int, global_micro: int) -> torch.Generator:
    """The masking RNG of one micro-batch, derived from (seed, step, global micro-batch index).

    Masks then do not depend on how a run was interrupted (a resumed run draws the same ones),
    and the global index ``micro x world_size + rank`` makes a W-process run draw exactly the
    masks of a single process with W times the gradient accumulation.
    """
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, step, global_micro]).generate_state(1, np.uint64)[0] >> 1))
    return g


# --- schedule -----------------------------------------------------------------------------------

def lr_at(cfg: PretrainConfig, step: int, progress: float) -> float:
    """Learning rate for optimizer step ``step`` (0-based) at training progress ``progress`` in [0, 1].

    Linear warm-up (``warmup`` < 1: share of training; >= 1: steps), times a decay from ``lr``
    to ``min_lr_ratio x lr`` over the whole run, linear or cosine (nanoGPT's get_lr, with
    progress measured in steps or, under --time-budget, in elapsed time as in Cramming).
    """
    if cfg.warmup >= 1:
        warm = min(1.0, (step + 1) / cfg.warmup)
    elif cfg.warmup > 0:
        warm = min(1.0, max(progress, 1e-9) / cfg.warmup)
    else:
        warm = 1.0
    p = min(max(progress, 0.0), 1.0)
    shape = (1.0 - p) if cfg.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
    return cfg.lr * warm * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape)


# --- precision ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 dot-product instructions (AVX512-BF16, AMX), where oneDNN runs bf16
    matmuls about twice as fast as fp32 (measured 2.3x on a mini model, see docs)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast_for(precision: str, device: torch.device):
    """(autocast context, "bf16" | "fp32") for --precision on ``device``; weights and optimizer
    state stay fp32 either way (mixed precision)."""
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    if precision == "bf16" and not native:
        raise ConfigError(f"--precision bf16: this {device.type.upper()} has no native bf16 support; use --precision fp32 or auto.")
    if precision == "fp32" or not native:
        return nullcontext(), "fp32"
    return torch.autocast(device.type, dtype=torch.bfloat16), "bf16"


# --- checkpoint I/O -----------------------------------------------------------------------------

def _rng_state() -> dict:
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }


def _set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: Path, state: dict) -> None:
    """Write the training state atomically (a crash mid-save keeps the old file), without pickle."""
    save_state(path, state)


def load_checkpoint(path: Path) -> dict:
    """The training state saved by :func:`save_checkpoint`; never a pickle (docs/security.md)."""
    state = load_state(path, what="checkpoint", fix="nothing was changed - restore it, or start again with --overwrite")
    missing = [k for k in ("model", "optimizer", "step", "config", "data", "rng") if not isinstance(state, dict) or k not in state]
    if missing:
        raise NlpkitError(f"checkpoint {path} is incomplete (no {missing[0]!r}); nothing was changed - "
                          "restore it, or start again with --overwrite.")
    return state


def save_hf_folder(model, tokenizer, folder: Path) -> None:
    """Save an HF folder file by file through a temporary sibling (each file replaced atomically).
    The saved config carries fine-tuning dropout; pretraining ran without dropout."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no tqdm bars on stderr from save_pretrained
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = owned_temp_dir(folder.parent, f".{folder.name or 'model'}.tmp-")
    try:
        set_finetune_dropout(model.config, True)
        try:
            save_pretrained(model, tmp, safe_serialization=True)
        finally:
            set_finetune_dropout(model.config, False)
        save_pretrained(tokenizer, tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for f in sorted(tmp.iterdir()):
            os.replace(f, folder / f.name)
    except BaseException as exc:
        if is_full_disk(exc):  # name the folder asked for, not the hidden temporary one
            raise naming(OSError(exc.errno, exc.strerror), folder) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_jsonable) + "\n", newline=None)


def _read_report(out: Path) -> dict:
    try:
        report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def _jsonable(o):
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


# --- evaluation ---------------------------------------------------------------------------------

@torch.no_grad()
def evaluate_mlm(model, blocks: torch.Tensor, cfg: PretrainConfig, vocab_size: int, device, autocast,
                 word_start=None, ids_of: TokenIds = TokenIds()) -> float:
    """Mean MLM loss per masked token on the held-out blocks, with masks fixed by the seed."""
    from nlpkit.pretrain.model import mlm_loss

    was_training = model.training
    model.eval()
    g = torch.Generator()
    g.manual_seed(cfg.seed + EVAL_SEED_OFFSET)
    total, count = 0.0, 0
    for i in range(0, len(blocks), cfg.batch_size):
        x = blocks[i:i + cfg.batch_size]
        inputs, labels = mask_tokens(x, vocab_size=vocab_size, mlm_prob=cfg.mlm_prob, generator=g,
                                     word_start=word_start, ids_of=ids_of)
        n = int((labels != -100).sum())
        if n == 0:
            continue
        with autocast:
            loss = mlm_loss(model, inputs.to(device), labels.to(device))
        total += float(loss) * n
        count += n
    model.train(was_training)
    return total / count if count else float("nan")


# --- the command --------------------------------------------------------------------------------

def _prepare_out(cfg: PretrainConfig, out: Path, *, resume: bool, overwrite: bool, dist: Dist):
    """Check --out against --resume/--overwrite; return the checkpoint state to resume from, if any."""
    ckpt_path = out / CHECKPOINT
    if resume and overwrite:
        raise ConfigError("give --resume or --overwrite, not both.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder path.")
    exists = out.exists() and any(out.iterdir())
    if resume:
        if not ckpt_path.exists() and (out / OLD_CHECKPOINT).exists():
            raise ConfigError(f"{out / OLD_CHECKPOINT} was written by an older nlpkit as a pickle, which nlpkit no "
                              "longer loads; start again with --overwrite.")
        if not ckpt_path.exists():
            if exists and not (out / CONFIG_FILE).exists():
                raise ConfigError(f"--out {out} is not a pretraining folder (no {CONFIG_FILE}); pick another --out.")
            return None  # nothing saved yet: start from step 0 in the same folder
        if not (out / CONFIG_FILE).exists():
            raise NlpkitError(f"{out / CONFIG_FILE} is missing, so the checkpoint cannot be checked; use --overwrite to start again.")
        stored = PretrainConfig.from_dict(json.loads((out / CONFIG_FILE).read_text(encoding="utf-8")))
        conflicts = cfg.resume_conflicts(stored)
        if conflicts:
            name, old, new = conflicts[0]
            more = f" (and {len(conflicts) - 1} more: {', '.join(option_name(c[0]) for c in conflicts[1:])})" if len(conflicts) > 1 else ""
            raise ConfigError(
                f"--resume: {option_name(name)} is {new!r} but the checkpoint in {out} used {old!r}{more}; "
                f"rerun with {option_name(name)} {old} (or leave it out), or use --overwrite to start again."
            )
        return load_checkpoint(ckpt_path)
    if exists and not overwrite:
        raise ConfigError(f"--out {out} already exists and is not empty; pass --resume to continue it, "
                          "--overwrite to replace it, or choose another --out.")
    return None


def _total_steps(cfg: PretrainConfig, sampler: BlockSampler) -> int | None:
    if cfg.steps is not None:
        return cfg.steps
    if cfg.epochs is not None:
        return max(1, math.ceil(cfg.epochs * sampler.micro_per_epoch / cfg.grad_accum))
    return None  # time budget


def pretrain(config: PretrainConfig, *, resume: bool = False, overwrite: bool = False, runs_root=None,
             progress=None, log: Callable[[str], None] | None = None, record_run: bool = True) -> PretrainResult:
    """Train a WordPiece tokenizer and an MLM encoder from scratch on a corpus.

    Parameters
    ----------
    config : every option; validated (and resolved: preset dims, lr, length) before any work.
    resume : continue from ``out/checkpoints/checkpoint.safetensors``; options that define the training
        trajectory must agree with the checkpoint (ConfigError names the first that does not).
    overwrite : replace an existing ``out`` folder.
    runs_root : registry folder for the pretrain run (default ``$NLPKIT_RUNS_DIR`` / ``./runs``).
    progress : a ``rich.progress.Progress`` to show the training bar on (rank 0 only; started when
        training starts), or any object with its ``add_task`` and ``update``.
    log : called with one-line messages (reports, evaluations) on rank 0.
    record_run : record a run in the registry (rank 0).

    Returns
    -------
    PretrainResult with the output folder, the report written to ``pretrain.json`` and the model.
    """
    cfg = config.validate()
    dist = setup_distributed()
    say = (log or (lambda _m: None)) if dist.main else (lambda _m: None)
    out = Path(cfg.out)
    state = _prepare_out(cfg, out, resume=resume, overwrite=overwrite, dist=dist)
    if record_run and dist.main:
        from nlpkit.runs import check_runs_root

        check_runs_root(runs_root)  # the run is recorded at the end: fail now, not after training
    _barrier(dist)  # every rank has checked --out before rank 0 creates it
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif dist.world > 1 and dist.device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", dist.world))))

    # -- corpus and tokenizer ------------------------------------------------------------------
    corpus: Corpus = read_corpus(cfg.corpus, heldout_docs=cfg.heldout_docs, seed=cfg.seed,
                                 dataset_options=cfg.dataset_options)
    reference = load_tokenizer(cfg.compare_tokenizer, "--compare-tokenizer") if cfg.compare_tokenizer else None
    t0 = time.perf_counter()
    init_model, tokenizer = None, None  # (under DDP, ranks > 0 read the trained tokenizer from --out)
    if cfg.init_from:
        tokenizer, init_model = _load_init(cfg)
    elif state is not None:
        tokenizer = load_tokenizer(out)  # resume: the tokenizer saved at the start of the run
    elif cfg.tokenizer:
        tokenizer = load_tokenizer(cfg.tokenizer, "--tokenizer")
    else:
        check_vocab_fits(corpus.train, cfg.vocab_size)  # on every rank: none may wait on a failed rank 0
        if dist.main:
            tokenizer = train_wordpiece(corpus.train, cfg.vocab_size, lowercase=cfg.lowercase,
                                        strip_accents=cfg.strip_accents)
        _barrier(dist)
    check_fits_memory(cfg, len(tokenizer) if tokenizer is not None else cfg.vocab_size, dist.device, init_model)
    # From the first file written until training starts, a failure (or Ctrl-C) leaves --out as it
    # was: a new folder is removed, and the folder --overwrite replaced is put back.
    fresh = _FreshOut(out, replace=overwrite) if dist.main and state is None else None
    try:
        result = _pretrain_started(cfg, dist, out, state, fresh, corpus, tokenizer, init_model, reference, t0,
                                   say, progress, record_run, runs_root)
    except BaseException as exc:
        if fresh is not None and not fresh.kept:
            fresh.undo()
        elif is_full_disk(exc) and dist.main:
            if fresh is not None and not (out / CHECKPOINT).is_file():
                fresh.undo()  # nothing to resume from: leave no half-written --out behind
            elif (out / CHECKPOINT).is_file():  # a valid checkpoint stays, so the run can go on
                where = f" while writing {exc.filename}" if exc.filename else ""
                raise NlpkitError(f"no space left on the device{where}; free some space, then continue with the "
                                  f"same command plus --resume ({out} keeps its last checkpoint).") from None
        raise
    return result


def _pretrain_started(cfg, dist, out, state, fresh, corpus, tokenizer, init_model, reference, t0, say, progress,
                      record_run, runs_root) -> PretrainResult:
    """The rest of :func:`pretrain`, from the first file written in --out (``fresh.keep()`` once training starts)."""
    if fresh is not None:
        tokenizer.model_max_length = cfg.max_length  # truncation=True then cuts at the model's positions
        fresh.make()
        save_pretrained(tokenizer, out)
        _write_json(out / CONFIG_FILE, cfg.to_dict())
    previous = _read_report(out) if state is not None else {}  # before "status": "training" replaces it
    if dist.main and state is not None:
        _write_json(out / CONFIG_FILE, cfg.to_dict())  # e.g. a longer --steps, for the next --resume
    _barrier(dist)
    if not dist.main and state is None and not cfg.init_from and not cfg.tokenizer:
        tokenizer = load_tokenizer(out)
    tokenizer_seconds = time.perf_counter() - t0
    vocab_size = len(tokenizer)

    train_ids = encode_docs(tokenizer, corpus.train)
    held_ids = encode_docs(tokenizer, corpus.heldout)
    report = {"corpus": corpus_report(corpus, np.array([len(d) for d in train_ids]), cfg.max_length)}
    report["tokenizer"] = {"vocab_size": vocab_size, "seconds": round(tokenizer_seconds, 3),
                           "heldout": fertility(tokenizer, corpus.heldout)}
    if cfg.compare_tokenizer:
        report["tokenizer"]["reference"] = {"path": cfg.compare_tokenizer, **fertility(reference, corpus.heldout)}
    report["heldout_unigram_entropy"] = unigram_entropy(held_ids)
    c = report["corpus"]
    say(f"corpus: {c['documents']:,} documents ({c['heldout_documents']:,} held out, from {c['heldout_from']}), "
        f"{c['words']:,} words, {c['characters']:,} characters, {c['tokens']:,} tokens; tokens/doc median "
        f"{c['tokens_per_doc']['median']:.0f}, p90 {c['tokens_per_doc']['p90']:.0f}, max {c['tokens_per_doc']['max']:,}; "
        f"{c['docs_over_max_length']:,} documents longer than --max-length {cfg.max_length}")
    own = "reused" if cfg.init_from or cfg.tokenizer else "trained"
    for name, f in [(own, report["tokenizer"]["heldout"])] + (
            [("reference", report["tokenizer"]["reference"])] if "reference" in report["tokenizer"] else []):
        say(f"tokenizer ({name}, vocab {f['vocab_size']:,}) on held-out text: {f['tokens_per_word']:.3f} tokens/word, "
            f"{f['share_words_split']:.1%} of words split, {f['share_unk']:.2%} unknown")
    if dist.main:  # the report exists from the start; the final one replaces it
        _write_json(out / REPORT_FILE, {**report, "status": "training"})

    ids_of = TokenIds.of(tokenizer, f"the tokenizer of {cfg.init_from or cfg.tokenizer or out}")
    blocks = pack(train_ids, cfg.max_length, ids_of)
    global_micro = cfg.batch_size * dist.world
    if len(blocks) < global_micro:
        raise ConfigError(
            f"the corpus packs into only {len(blocks)} block(s) of {cfg.max_length} tokens, fewer than one batch "
            f"({cfg.batch_size} x {dist.world} process(es)); lower --batch-size or --max-length, or add text."
        )
    held_len = min(cfg.max_length, max(16, sum(len(d) + 1 for d in held_ids) // 2))
    eval_blocks = pack(held_ids, held_len, ids_of)[: cfg.eval_blocks]
    if len(eval_blocks) == 0:
        raise ConfigError("the held-out documents are too short to evaluate on; raise heldout_docs or add text.")
    report["blocks"] = {"train": len(blocks), "eval": len(eval_blocks), "eval_length": held_len}

    # -- model, optimizer ----------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = init_model if init_model is not None else build_model(cfg, vocab_size, ids_of)
    model.to(dist.device)
    model.train()
    optimizer = make_optimizer(model, cfg, dist.device)
    sampler = BlockSampler(len(blocks), cfg.batch_size, dist, cfg.seed)
    total_steps = _total_steps(cfg, sampler)
    step, elapsed, tokens_seen, best = 0, 0.0, 0, float("inf")
    history = {"train": [], "eval": []}
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed, tokens_seen = int(state["step"]), float(state["elapsed"]), int(state["tokens_seen"])
        best = float(state["best_eval"])
        sampler.epoch, sampler.cursor = int(state["data"]["epoch"]), int(state["data"]["cursor"])
        history = json.loads(state["history"])
        _set_rng_state(state["rng"])
        say(f"resumed from step {step} ({out / CHECKPOINT})")
    word_start = word_start_table(tokenizer) if cfg.whole_word_mask else None
    wrapped = MaskedLMWrapper(model)
    if dist.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        wrapped = DDP(wrapped, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None)
    if cfg.compile:
        wrapped = torch.compile(wrapped)
    autocast, precision = autocast_for(cfg.precision, dist.device)
    n_params = sum(p.numel() for p in model.parameters())
    tokens_per_step = cfg.batch_size * cfg.grad_accum * dist.world * cfg.max_length
    say(f"model {cfg.arch} {cfg.layers}x{cfg.hidden} ({n_params / 1e6:.2f}M params), {len(blocks)} blocks of "
        f"{cfg.max_length}, global batch {cfg.batch_size}x{cfg.grad_accum}x{dist.world}, "
        f"{f'{total_steps} steps' if total_steps else f'steps until the {cfg.time_budget:g} s budget'}, "
        f"device {dist.device}, {precision}")

    def progress_at(step_: int, elapsed_: float) -> float:
        return step_ / total_steps if total_steps else elapsed_ / cfg.time_budget

    def checkpoint_state() -> dict:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "elapsed": elapsed, "tokens_seen": tokens_seen, "best_eval": best,
            "data": {"epoch": sampler.epoch, "cursor": sampler.cursor}, "rng": _rng_state(),
            "config": json.dumps(cfg.to_dict()), "history": json.dumps(history),
        }

    def eval_and_keep_best() -> float:
        nonlocal best
        loss = evaluate_mlm(model, eval_blocks, cfg, vocab_size, dist.device, autocast, word_start, ids_of)
        history["eval"].append({"step": step, "tokens": tokens_seen, "loss": loss,
                                "perplexity": math.exp(min(loss, 50)), "elapsed": round(elapsed, 3)})
        if loss < best:
            best = loss
            save_hf_folder(model, tokenizer, out)
        say(f"step {step}: held-out MLM loss {loss:.4f} (ppl {math.exp(min(loss, 50)):.1f}), best {best:.4f}")
        return loss

    if fresh is not None:
        fresh.keep()  # training starts: from here on an interrupted run is continued with --resume
    task = None
    if progress is not None and dist.main:
        total = total_steps if total_steps else cfg.time_budget
        done = step if total_steps else elapsed
        task = progress.add_task("pretrain", total=total, completed=done, loss=float("nan"), tps=0.0)
        if hasattr(progress, "start"):  # shown from here (a no-op if the caller started it): no empty bar before an error
            progress.start()

    # -- the loop ------------------------------------------------------------------------------
    train_time = 0.0
    train_tokens = 0
    window_loss, window_n = 0.0, 0
    log_every = cfg.log_every
    while True:
        if not total_steps and dist.world > 1:  # one clock for all ranks: same lr, same stop
            elapsed = _max_over_ranks(elapsed, dist)
        done = step >= total_steps if total_steps else elapsed >= cfg.time_budget
        if done:
            break
        t_step = time.perf_counter()
        lr = lr_at(cfg, step, progress_at(step, elapsed))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=dist.device)
        for micro in range(cfg.grad_accum):
            x = blocks[sampler.next_indices()]
            inputs, labels = mask_tokens(x, vocab_size=vocab_size, mlm_prob=cfg.mlm_prob,
                                         generator=_step_generator(cfg.seed, step, micro * dist.world + dist.rank),
                                         word_start=word_start, ids_of=ids_of)
            sync = micro == cfg.grad_accum - 1
            ctx = wrapped.no_sync() if (dist.world > 1 and not sync and hasattr(wrapped, "no_sync")) else nullcontext()
            with ctx, autocast:
                loss = wrapped(inputs.to(dist.device, non_blocking=True), labels.to(dist.device, non_blocking=True))
            (loss / cfg.grad_accum).backward()
            loss_sum += loss.detach()
        if cfg.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        dt = time.perf_counter() - t_step
        elapsed += dt
        train_time += dt
        tokens_seen += tokens_per_step
        train_tokens += tokens_per_step
        window_loss += float(loss_sum) / cfg.grad_accum
        window_n += 1
        if step % log_every == 0 or step == total_steps:
            tps = train_tokens / train_time if train_time else 0.0
            history["train"].append({"step": step, "tokens": tokens_seen, "loss": window_loss / window_n,
                                     "lr": lr, "tokens_per_s": tps, "elapsed": round(elapsed, 3)})
            if task is not None:
                progress.update(task, completed=step if total_steps else min(elapsed, cfg.time_budget),
                                loss=window_loss / window_n, tps=tps)
            window_loss, window_n = 0.0, 0
        last = (step >= total_steps) if total_steps else False
        if dist.main and (step % cfg.eval_every == 0) and not last:
            eval_and_keep_best()
        if step % cfg.save_every == 0 and not last:
            if dist.main:
                save_checkpoint(out / CHECKPOINT, checkpoint_state())
            _barrier(dist)

    # -- final evaluation, last/best folders, report -------------------------------------------
    if state is not None and step == int(state["step"]):
        if previous.get("status") == "complete":  # --resume of a finished run with the same length
            if dist.main:
                _write_json(out / REPORT_FILE, previous)
            say(f"nothing to do: {out} has already trained {step} steps; pass a larger --steps (or --epochs, "
                "--time-budget) with --resume to train further.")
            return PretrainResult(out=out, report=previous if dist.main else {}, model=model, history=history)
    result = PretrainResult(out=out, report=report, model=model, history=history)
    if dist.main:
        final_loss = eval_and_keep_best()
        save_hf_folder(model, tokenizer, out / "last")
        save_checkpoint(out / CHECKPOINT, checkpoint_state())
        throughput = {"tokens_per_s": train_tokens / train_time if train_time else None,
                      "train_seconds": round(train_time, 3), "tokens_seen": tokens_seen,
                      "tokens_per_step": tokens_per_step, "world_size": dist.world, "device": str(dist.device),
                      "threads": torch.get_num_threads(), "params": n_params, "precision": precision}
        report.update({
            "status": "complete", "config": cfg.to_dict(), "steps": step, "final_eval_loss": final_loss,
            "best_eval_loss": best,
            "final_train_loss": history["train"][-1]["loss"] if history["train"] else None,
            "throughput": throughput, "history": history,
            "layout": {"best": ".", "last": "last", "checkpoint": str(CHECKPOINT), "config": CONFIG_FILE},
        })
        _write_json(out / REPORT_FILE, report)
        if record_run:
            result.run_name = _record_run(cfg, report, out, runs_root)
    _barrier(dist)
    return result


class _FreshOut:
    """--out for a run that starts from step 0: made by :meth:`make`; :meth:`undo` restores it as it was.

    With --overwrite the old folder is moved aside (a hidden sibling), not deleted, until
    :meth:`keep`: a run that fails before training starts leaves the user's previous model intact.
    """

    def __init__(self, out: Path, replace: bool):
        self.out, self.replace = out, replace
        self.aside: Path | None = None
        self.made: Path | None = None  # the highest folder this run created
        self.kept = False

    def make(self) -> None:
        if self.replace and self.out.exists():
            from nlpkit._io import temp_dir_beside

            self.aside = temp_dir_beside(self.out, "replaced")
            os.replace(self.out, self.aside / self.out.name)
        missing = [p for p in [self.out, *self.out.parents] if not p.exists()]
        self.made = missing[-1] if missing else None
        self.out.mkdir(parents=True, exist_ok=True)

    def undo(self) -> None:
        if self.made is not None:
            shutil.rmtree(self.made, ignore_errors=True)
        elif self.out.is_dir():  # an empty folder the user made: empty again
            for child in self.out.iterdir():
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        if self.aside is not None:
            if self.out.is_dir() and not any(self.out.iterdir()):
                self.out.rmdir()
            os.replace(self.aside / self.out.name, self.out)
            self.aside.rmdir()

    def keep(self) -> None:
        self.kept = True
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None


def check_fits_memory(cfg: PretrainConfig, vocab_size: int, device: torch.device, init_model=None) -> None:
    """Refuse, before any file is written, a model whose training state cannot fit in this machine's memory.

    The parameters are counted on the meta device (no memory used); training needs at least 16 bytes
    each (fp32 weights, gradients and AdamW's two moments), activations on top.
    """
    if init_model is not None:
        n = sum(p.numel() for p in init_model.parameters())
    else:
        with torch.device("meta"):
            n = sum(p.numel() for p in build_model(cfg, vocab_size).parameters())
    need, total = 16 * n, _memory_of(device)
    if total and need > total:
        where = "GPU memory" if device.type == "cuda" else "memory"
        raise ConfigError(
            f"a {cfg.layers}x{cfg.hidden} model with a {vocab_size:,}-token vocabulary has {_count(n)} parameters; training "
            f"needs at least {need / 2**30:,.1f} GiB of {where}, more than the {total / 2**30:,.1f} GiB here. "
            "Choose a smaller --size, --layers or --hidden."
        )


def _count(n: int) -> str:
    return f"{n / 1e9:,.1f}B" if n >= 1e9 else f"{n / 1e6:,.1f}M"


def _memory_of(device: torch.device) -> int | None:
    """Total memory of ``device`` in bytes (None where it cannot be read)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _load_init(cfg: PretrainConfig):
    """--init-from DIR: continue pretraining an existing MLM (its tokenizer, its positions)."""
    from transformers import AutoModelForMaskedLM

    from nlpkit.models.hf_checkpoint import (RECOPY, check_checkpoint_dir, check_loaded_weights,
                                             check_vocab_fits_model, position_limit, quiet_transformers)

    path = Path(cfg.init_from)
    if not (path / "config.json").exists():
        raise ConfigError(f"--init-from {path} has no config.json; pass a Hugging Face model folder.")
    check_checkpoint_dir(path, "--init-from")  # also refuses a folder that asks for its own Python code
    limit = position_limit(path)  # (RoBERTa's positions start after the padding index)
    if limit is not None and cfg.max_length > limit:
        raise ConfigError(f"--max-length {cfg.max_length} exceeds the {limit} positions of --init-from {path}; "
                          f"use --max-length {limit} or less.")
    tokenizer = load_tokenizer(path, "--init-from")
    with quiet_transformers():
        try:
            model, loading = AutoModelForMaskedLM.from_pretrained(
                str(path), attn_implementation="sdpa", local_files_only=True, output_loading_info=True,
                ignore_mismatched_sizes=True,  # mismatches are reported below, in one line
                use_safetensors=True,  # never a pickled pytorch_model.bin
                trust_remote_code=False)  # never the folder's own code, nor transformers' [y/N] prompt
        except Exception as exc:  # noqa: BLE001 - transformers raises many types for a broken folder
            raise ConfigError(f"cannot load a masked-language model from --init-from {path} "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); {RECOPY}") from None
    check_loaded_weights(model, loading, path, "pretraining")
    check_vocab_fits_model(tokenizer, model, path)
    set_finetune_dropout(model.config, False)
    for m in model.modules():  # pretraining runs without dropout (see build_model)
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return tokenizer, model


def _record_run(cfg: PretrainConfig, report: dict, out: Path, runs_root) -> str:
    from nlpkit.runs import create_run, package_versions

    preset = PRESETS.get(cfg.size or "", {})
    custom = (cfg.layers, cfg.hidden) != (preset.get("layers"), preset.get("hidden"))
    model_name = f"{cfg.arch}-{f'{cfg.layers}x{cfg.hidden}' if custom else cfg.size}"
    if cfg.init_from:
        model_name = f"{Path(cfg.init_from).name}-continued"
    size = sum(f.stat().st_size for f in out.glob("*") if f.is_file())
    with create_run("pretrain", model_name, runs_root=runs_root) as run:
        run.write_json("run.json", {
            "config": cfg.to_dict(), "seed": cfg.seed, "versions": package_versions(),
            "data": {"corpus": cfg.corpus, "corpus_sha256": report["corpus"]["fingerprint"],
                     "kind": report["corpus"]["kind"]},
            "timings": {"fit_seconds": report["throughput"]["train_seconds"],
                        "tokens_per_s": report["throughput"]["tokens_per_s"]},
            "model_size_bytes": size, "model_path": str(out.resolve()),
            "pretrain": {"final_eval_loss": report["final_eval_loss"], "best_eval_loss": report["best_eval_loss"],
                         "heldout_unigram_entropy": report["heldout_unigram_entropy"], "steps": report["steps"]},
        })
        run.write_json("pretrain.json", report)
        run.log(f"pretrained {model_name} into {out.resolve()}")
    return run.name

"""``pretrain(config)``: corpus -> WordPiece tokenizer -> token store -> packed blocks -> MLM training loop -> HF folder + run.

The loop (:func:`_train`) is nanoGPT-style straight-line code: a schedule function, periodic held-out
evaluation, one log record every ``log_every`` steps, and a checkpoint with model, optimizer, step,
config, RNG state and data position, so that ``--resume`` continues exactly. Under ``torchrun`` /
``accelerate launch`` it runs data-parallel (DDP): the global batch is ``batch_size x grad_accum x
world_size`` blocks, each rank reads a disjoint slice of every global batch, only rank 0 logs and
writes files. The output folder and its safe handling are :mod:`nlpkit.pretrain.output`; the
tokenised corpus is :mod:`nlpkit.pretrain.store` (memory-mapped, built once, reused); packing and
the block order are :mod:`nlpkit.pretrain.packing`.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nlpkit._io import save_pretrained
from nlpkit.errors import ConfigError
from nlpkit.hf.architecture import (MaskedLMWrapper, TokenIds, build_model, mask_tokens, mlm_loss, set_finetune_dropout,
                                    word_start_table)
from nlpkit.hf.tokenizer import check_vocab_fits, fertility, load_tokenizer, train_wordpiece
from nlpkit.pretrain.config import PREPARED_FIXED, PRESETS, PretrainConfig
from nlpkit.pretrain.corpus import CorpusStream, corpus_report, open_corpus
from nlpkit.pretrain.output import (CHECKPOINT, CONFIG_FILE, REPORT_FILE, FreshOut, check_resume_conflicts, prepare_out,
                                    read_report, save_checkpoint, save_hf_folder, undo_on_failure, write_json)
from nlpkit.pretrain.packing import BlockSampler, StoreBlocks
from nlpkit.pretrain.store import TokenStore, prepare_store, remove_other_stores
from nlpkit.training.distributed import DistContext, barrier, init_distributed, max_over_ranks
from nlpkit.training.optim import adamw, param_groups
from nlpkit.training.precision import autocast_for
from nlpkit.training.rng import rng_state, set_rng_state
from nlpkit.training.schedule import lr_multiplier

EVAL_SEED_OFFSET = 7919  # eval masks are fixed for the whole run, so eval losses compare across steps


@dataclass
class PretrainResult:
    """What ``pretrain`` produced (rank 0 holds the full picture; other ranks get the same paths)."""

    out: Path
    report: dict
    run_name: str | None = None
    model: object | None = None  # the trained HF model (last weights), for callers and tests
    history: dict = field(default_factory=dict)


@dataclass
class PreparedRun:
    """What :func:`pretrain` has settled before the first file is written in --out."""

    cfg: PretrainConfig
    dist: DistContext
    device: torch.device
    out: Path
    resume_state: dict | None  # the checkpoint --resume continues from; None: a run from step 0
    fresh: FreshOut | None  # rank 0 of a run from step 0: the --out folder it makes (and undoes on failure)
    corpus: CorpusStream
    tokenizer: object | None  # None on ranks > 0 until rank 0 has trained and saved it
    init_model: object | None  # --init-from's model
    reference: object | None  # --compare-tokenizer's tokenizer
    tokenizer_started: float  # time.perf_counter() when loading or training the tokenizer began
    prepare_only: bool = False  # build the token store (and tokenizer), train nothing
    store_progress: Callable[[int, int], None] | None = None  # (documents, bytes) tokenised so far


# --- pieces of the loop -------------------------------------------------------------------------

def _step_generator(seed: int, step: int, global_micro: int) -> torch.Generator:
    """The masking RNG of one micro-batch, derived from (seed, step, global micro-batch index).

    Masks then do not depend on how a run was interrupted (a resumed run draws the same ones),
    and the global index ``micro x world_size + rank`` makes a W-process run draw exactly the
    masks of a single process with W times the gradient accumulation.
    """
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, step, global_micro]).generate_state(1, np.uint64)[0] >> 1))
    return g


def _build_model(cfg: PretrainConfig, vocab_size: int, ids_of: TokenIds | None = None):
    return build_model(cfg.arch, vocab_size=vocab_size, layers=cfg.layers, hidden=cfg.hidden, heads=cfg.heads,
                       intermediate=cfg.intermediate, max_length=cfg.max_length, ids_of=ids_of)


def _optimizer(model, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only (nanoGPT, BERT)."""
    groups = param_groups(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return adamw(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-6, foreach=True)


@torch.no_grad()
def evaluate_mlm(model, blocks: torch.Tensor, *, cfg: PretrainConfig, vocab_size: int, device, autocast=None,
                 word_start=None, ids_of: TokenIds = TokenIds()) -> float:
    """Mean MLM loss per masked token on the held-out blocks, with masks fixed by the seed.

    ``cfg`` gives the batch size, masking rate and seed; ``autocast`` the precision context
    (default none: fp32).
    """
    autocast = autocast if autocast is not None else nullcontext()
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


def _total_steps(cfg: PretrainConfig, sampler: BlockSampler) -> int | None:
    if cfg.steps is not None:
        return cfg.steps
    if cfg.epochs is not None:
        return max(1, math.ceil(cfg.epochs * sampler.micro_per_epoch / cfg.grad_accum))
    return None  # time budget


# --- the command --------------------------------------------------------------------------------

def pretrain(config: PretrainConfig, *, resume: bool = False, overwrite: bool = False, runs_root=None,
             progress=None, log: Callable[[str], None] | None = None, record_run: bool = True,
             prepare_only: bool = False, store_progress: Callable[[int, int], None] | None = None) -> PretrainResult:
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
    prepare_only : stop once the tokenizer and the token store are ready (``"status": "prepared"``
        in pretrain.json); ``--resume`` on that folder then trains from step 0 with them.
    store_progress : called with (documents, bytes) tokenised so far while the token store is built.

    Returns
    -------
    PretrainResult with the output folder, the report written to ``pretrain.json`` and the model.
    """
    cfg = config.validate()
    cuda = torch.cuda.is_available()
    dist = init_distributed("cuda" if cuda else "cpu")
    device = torch.device("cuda", dist.local_rank) if cuda else torch.device("cpu")
    say = (log or (lambda _m: None)) if dist.is_main else (lambda _m: None)
    out = Path(cfg.out)
    state = prepare_out(cfg, out, resume=resume, overwrite=overwrite)
    if record_run and dist.is_main:
        from nlpkit.runs import check_runs_root

        check_runs_root(runs_root)  # the run is recorded at the end: fail now, not after training
    barrier(dist)  # every rank has checked --out before rank 0 creates it
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif dist.world_size > 1 and device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size))))

    # -- corpus and tokenizer ------------------------------------------------------------------
    corpus = open_corpus(cfg.corpus, heldout_docs=cfg.heldout_docs, seed=cfg.seed, dataset_options=cfg.dataset_options)
    # a folder made by --prepare-only, continued with --resume: its tokenizer and store, from step 0
    prepared = resume and state is None and read_report(out).get("status") == "prepared"
    if prepared:
        check_resume_conflicts(cfg, out, PREPARED_FIXED)
    reference = load_tokenizer(cfg.compare_tokenizer, "--compare-tokenizer") if cfg.compare_tokenizer else None
    t0 = time.perf_counter()
    init_model, tokenizer = None, None  # (under DDP, ranks > 0 read the trained tokenizer from --out)
    if cfg.init_from:
        tokenizer, init_model = _load_init(cfg)
    elif state is not None or prepared:
        tokenizer = load_tokenizer(out)  # resume: the tokenizer saved at the start of the run
    elif cfg.tokenizer:
        tokenizer = load_tokenizer(cfg.tokenizer, "--tokenizer")
    else:
        texts = _tokenizer_texts(corpus, cfg.tokenizer_sample_docs)
        if dist.world_size > 1:
            check_vocab_fits(texts, cfg.vocab_size)  # on every rank: none may wait on a failed rank 0
        if dist.is_main:
            tokenizer = train_wordpiece(texts, cfg.vocab_size, lowercase=cfg.lowercase,
                                        strip_accents=cfg.strip_accents)
        barrier(dist)
    if not prepare_only:
        check_fits_memory(cfg, len(tokenizer) if tokenizer is not None else cfg.vocab_size, device, init_model)
    # From the first file written until training starts, a failure (or Ctrl-C) leaves --out as it
    # was: a new folder is removed, and the folder --overwrite replaced is put back.
    fresh = FreshOut(out, replace=overwrite) if dist.is_main and state is None and not prepared else None
    run = PreparedRun(cfg=cfg, dist=dist, device=device, out=out, resume_state=state, fresh=fresh, corpus=corpus,
                      tokenizer=tokenizer, init_model=init_model, reference=reference, tokenizer_started=t0,
                      prepare_only=prepare_only, store_progress=store_progress)
    with undo_on_failure(out, fresh, is_main=dist.is_main):
        return _train(run, say=say, progress=progress, record_run=record_run, runs_root=runs_root)


def _start_out_folder(run: PreparedRun) -> tuple[object, dict]:
    """Write the tokenizer and the resolved config into --out; return (the tokenizer on this rank,
    the pretrain.json a resumed run had written)."""
    cfg, out, tokenizer = run.cfg, run.out, run.tokenizer
    if run.fresh is not None:
        tokenizer.model_max_length = cfg.max_length  # truncation=True then cuts at the model's positions
        run.fresh.make()
        save_pretrained(tokenizer, out)
        write_json(out / CONFIG_FILE, cfg.to_dict())
    previous = read_report(out) if run.resume_state is not None else {}  # before "status": "training" replaces it
    if run.dist.is_main and run.fresh is None:  # resumed (or prepared by --prepare-only)
        write_json(out / CONFIG_FILE, cfg.to_dict())  # e.g. a longer --steps, for the next --resume
        if run.resume_state is None:  # prepared: the model's length is chosen now
            tokenizer.model_max_length = cfg.max_length
            save_pretrained(tokenizer, out)
    barrier(run.dist)
    if not run.dist.is_main and run.resume_state is None and not cfg.init_from and not cfg.tokenizer:
        tokenizer = load_tokenizer(out)
    return tokenizer, previous


def _tokenizer_texts(corpus: CorpusStream, sample_docs: int | None):
    """What the tokenizer is trained on: every training document, streamed (each pass reads the
    files again), or the first ``sample_docs`` of them, in memory."""
    if not sample_docs:
        return corpus.train
    from itertools import islice

    return list(islice(corpus.train, sample_docs))


def _store_root(cfg: PretrainConfig, out: Path) -> Path:
    return Path(cfg.store) if cfg.store else out / "token_store"


def _open_store(run: PreparedRun, tokenizer, *, say) -> TokenStore:
    """The token store of the corpus and tokenizer: reused when one exists, else built by rank 0."""
    cfg, dist = run.cfg, run.dist
    root = _store_root(cfg, run.out)
    store = None
    if dist.is_main:
        store = prepare_store(root, run.corpus, tokenizer, num_proc=cfg.num_proc, on_progress=run.store_progress)
        if not cfg.store:  # --out's own store: the stores of an earlier corpus are of no use any more
            remove_other_stores(root, store.path)
    barrier(dist)
    if store is None:
        store = prepare_store(root, run.corpus, tokenizer, build=False)
    meta = store.meta
    if store.reused:
        say(f"reusing token store {store.path}")
    else:
        say(f"token store {store.path}: {meta['parts']['train']['tokens']:,} training tokens, built in "
            f"{meta['build']['seconds']:.1f} s with {meta['build']['num_proc']} process(es)")
    return store


def _describe_corpus(run: PreparedRun, tokenizer, store: TokenStore, tokenizer_seconds: float, *, say) -> dict:
    """The corpus and tokenizer report (logged, and written to pretrain.json with ``"status": "training"``)."""
    cfg, meta = run.cfg, store.meta
    train, held = meta["parts"]["train"], meta["parts"]["heldout"]
    stats = {**meta["corpus"], "documents": train["documents"], "heldout_documents": held["documents"],
             "words": train["words"], "characters": train["characters"], "fingerprint": meta["corpus_fingerprint"]}
    report = {"corpus": corpus_report(stats, store.train.length_counts(), cfg.max_length)}
    sample = store.heldout_sample()
    report["tokenizer"] = {"vocab_size": len(tokenizer), "seconds": round(tokenizer_seconds, 3),
                           "sample_docs": cfg.tokenizer_sample_docs, "heldout": fertility(tokenizer, sample)}
    if cfg.compare_tokenizer:
        report["tokenizer"]["reference"] = {"path": cfg.compare_tokenizer, **fertility(run.reference, sample)}
    report["heldout_unigram_entropy"] = _unigram_entropy(store.heldout.token_counts(meta["sep"]))
    report["store"] = {"path": str(store.path), "reused": store.reused, "fingerprint": meta["fingerprint"],
                       "train_tokens": train["tokens"], "heldout_tokens": held["tokens"],
                       "input_bytes": meta["corpus"]["input_bytes"], "text_bytes": train["bytes"] + held["bytes"],
                       "build_seconds": meta["build"]["seconds"], "num_proc": meta["build"]["num_proc"]}
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
    return report


def _unigram_entropy(counts: np.ndarray) -> float:
    """Entropy (nats) of the token unigram distribution (as nlpkit.hf.tokenizer.unigram_entropy, from counts)."""
    c = counts[counts > 0].astype(np.float64)
    if not len(c):
        return float("nan")
    p = c / c.sum()
    return float(-(p * np.log(p)).sum())


def _make_blocks(cfg: PretrainConfig, store: TokenStore, ids_of: TokenIds,
                 world_size: int) -> tuple[StoreBlocks, torch.Tensor]:
    """(training blocks, read from the store on demand; held-out blocks, in memory); ConfigError
    when either is too small to train or evaluate on."""
    blocks = StoreBlocks(store.train, cfg.max_length, ids_of)
    global_micro = cfg.batch_size * world_size
    if len(blocks) < global_micro:
        raise ConfigError(
            f"the corpus packs into only {len(blocks)} block(s) of {cfg.max_length} tokens, fewer than one batch "
            f"({cfg.batch_size} x {world_size} process(es)); lower --batch-size or --max-length, or add text."
        )
    held_len = min(cfg.max_length, max(16, store.heldout.stream_tokens // 2))
    held = StoreBlocks(store.heldout, held_len, ids_of)
    eval_blocks = held[np.arange(min(len(held), cfg.eval_blocks))]
    if len(eval_blocks) == 0:
        raise ConfigError("the held-out documents are too short to evaluate on; raise heldout_docs or add text.")
    return blocks, eval_blocks


def _train(run: PreparedRun, *, say, progress, record_run: bool, runs_root) -> PretrainResult:
    """The rest of :func:`pretrain`, from the first file written in --out (``fresh.keep()`` once training starts)."""
    cfg, dist, device, out, state, fresh = run.cfg, run.dist, run.device, run.out, run.resume_state, run.fresh
    tokenizer, previous = _start_out_folder(run)
    tokenizer_seconds = time.perf_counter() - run.tokenizer_started
    vocab_size = len(tokenizer)
    store = _open_store(run, tokenizer, say=say)
    report = _describe_corpus(run, tokenizer, store, tokenizer_seconds, say=say)
    if run.prepare_only:
        report["status"] = "prepared"
        if dist.is_main and state is None:  # a folder that has trained keeps its report
            write_json(out / REPORT_FILE, report)
            if fresh is not None:
                fresh.keep()
        barrier(dist)
        return PretrainResult(out=out, report=report)
    if dist.is_main:  # the report exists from the start; the final one replaces it
        write_json(out / REPORT_FILE, {**report, "status": "training"})
    ids_of = TokenIds.of(tokenizer, f"the tokenizer of {cfg.init_from or cfg.tokenizer or out}")
    blocks, eval_blocks = _make_blocks(cfg, store, ids_of, dist.world_size)
    report["blocks"] = {"train": len(blocks), "eval": len(eval_blocks), "eval_length": eval_blocks.shape[1]}

    # -- model, optimizer ----------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = run.init_model if run.init_model is not None else _build_model(cfg, vocab_size, ids_of)
    model.to(device)
    model.train()
    optimizer = _optimizer(model, cfg)
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
        set_rng_state(state["rng"])
        say(f"resumed from step {step} ({out / CHECKPOINT})")
    word_start = word_start_table(tokenizer) if cfg.whole_word_mask else None
    wrapped = MaskedLMWrapper(model)
    if dist.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        wrapped = DDP(wrapped, device_ids=[dist.local_rank] if device.type == "cuda" else None)
    if cfg.compile:
        wrapped = torch.compile(wrapped)
    autocast, precision = autocast_for(cfg.precision, device)
    n_params = sum(p.numel() for p in model.parameters())
    tokens_per_step = cfg.batch_size * cfg.grad_accum * dist.world_size * cfg.max_length
    say(f"model {cfg.arch} {cfg.layers}x{cfg.hidden} ({n_params / 1e6:.2f}M params), {len(blocks)} blocks of "
        f"{cfg.max_length}, global batch {cfg.batch_size}x{cfg.grad_accum}x{dist.world_size}, "
        f"{f'{total_steps} steps' if total_steps else f'steps until the {cfg.time_budget:g} s budget'}, "
        f"device {device}, {precision}")

    def progress_at(step_: int, elapsed_: float) -> float:
        return step_ / total_steps if total_steps else elapsed_ / cfg.time_budget

    def checkpoint_state() -> dict:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "elapsed": elapsed, "tokens_seen": tokens_seen, "best_eval": best,
            "data": {"epoch": sampler.epoch, "cursor": sampler.cursor}, "rng": rng_state(),
            "config": json.dumps(cfg.to_dict()), "history": json.dumps(history),
        }

    def eval_and_keep_best() -> float:
        nonlocal best
        loss = evaluate_mlm(model, eval_blocks, cfg=cfg, vocab_size=vocab_size, device=device, autocast=autocast,
                            word_start=word_start, ids_of=ids_of)
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
    if progress is not None and dist.is_main:
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
        if not total_steps and dist.world_size > 1:  # one clock for all ranks: same lr, same stop
            elapsed = max_over_ranks(elapsed, dist, device)
        done = step >= total_steps if total_steps else elapsed >= cfg.time_budget
        if done:
            break
        t_step = time.perf_counter()
        lr = lr_multiplier(step, progress=progress_at(step, elapsed), warmup=cfg.warmup, shape=cfg.schedule,
                           min_ratio=cfg.min_lr_ratio, scale=cfg.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            x = blocks[sampler.next_indices()]
            inputs, labels = mask_tokens(x, vocab_size=vocab_size, mlm_prob=cfg.mlm_prob,
                                         generator=_step_generator(cfg.seed, step, micro * dist.world_size + dist.rank),
                                         word_start=word_start, ids_of=ids_of)
            sync = micro == cfg.grad_accum - 1
            ctx = wrapped.no_sync() if (dist.world_size > 1 and not sync and hasattr(wrapped, "no_sync")) else nullcontext()
            with ctx, autocast:
                loss = wrapped(inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True))
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
        if dist.is_main and (step % cfg.eval_every == 0) and not last:
            eval_and_keep_best()
        if step % cfg.save_every == 0 and not last:
            if dist.is_main:
                save_checkpoint(out / CHECKPOINT, checkpoint_state())
            barrier(dist)

    # -- final evaluation, last/best folders, report -------------------------------------------
    if state is not None and step == int(state["step"]):
        if previous.get("status") == "complete":  # --resume of a finished run with the same length
            if dist.is_main:
                write_json(out / REPORT_FILE, previous)
            say(f"nothing to do: {out} has already trained {step} steps; pass a larger --steps (or --epochs, "
                "--time-budget) with --resume to train further.")
            return PretrainResult(out=out, report=previous if dist.is_main else {}, model=model, history=history)
    result = PretrainResult(out=out, report=report, model=model, history=history)
    if dist.is_main:
        final_loss = eval_and_keep_best()
        save_hf_folder(model, tokenizer, out / "last")
        save_checkpoint(out / CHECKPOINT, checkpoint_state())
        throughput = {"tokens_per_s": train_tokens / train_time if train_time else None,
                      "train_seconds": round(train_time, 3), "tokens_seen": tokens_seen,
                      "tokens_per_step": tokens_per_step, "world_size": dist.world_size, "device": str(device),
                      "threads": torch.get_num_threads(), "params": n_params, "precision": precision}
        report.update({
            "status": "complete", "config": cfg.to_dict(), "steps": step, "final_eval_loss": final_loss,
            "best_eval_loss": best,
            "final_train_loss": history["train"][-1]["loss"] if history["train"] else None,
            "throughput": throughput, "history": history,
            "layout": {"best": ".", "last": "last", "checkpoint": str(CHECKPOINT), "config": CONFIG_FILE},
        })
        write_json(out / REPORT_FILE, report)
        if record_run:
            result.run_name = _record_run(cfg, report, out, runs_root)
    barrier(dist)
    return result


def check_fits_memory(cfg: PretrainConfig, vocab_size: int, device: torch.device, init_model=None) -> None:
    """Refuse, before any file is written, a model whose training state cannot fit in this machine's memory.

    The parameters are counted on the meta device (no memory used); training needs at least 16 bytes
    each (fp32 weights, gradients and AdamW's two moments), activations on top.
    """
    if init_model is not None:
        n = sum(p.numel() for p in init_model.parameters())
    else:
        with torch.device("meta"):
            n = sum(p.numel() for p in _build_model(cfg, vocab_size).parameters())
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

    from nlpkit.hf.checkpoint import (RECOPY, check_checkpoint_dir, check_loaded_weights,
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
                     "kind": report["corpus"]["kind"], "documents": report["corpus"].get("documents"),
                     "tokens": report["corpus"].get("tokens"),
                     "corpus_bytes": (report.get("store") or {}).get("input_bytes")},
            "store": {k: (report.get("store") or {}).get(k) for k in ("path", "reused", "train_tokens",
                                                                      "build_seconds")},
            "timings": {"fit_seconds": report["throughput"]["train_seconds"],
                        "tokens_per_s": report["throughput"]["tokens_per_s"]},
            "model_size_bytes": size, "model_path": str(out.resolve()),
            "pretrain": {"final_eval_loss": report["final_eval_loss"], "best_eval_loss": report["best_eval_loss"],
                         "heldout_unigram_entropy": report["heldout_unigram_entropy"], "steps": report["steps"]},
        })
        run.write_json("pretrain.json", report)
        run.log(f"pretrained {model_name} into {out.resolve()}")
    return run.name

"""Fine-tuning pieces for :class:`nlpkit.models.transformer.TransformerClassifier`.

Plain functions, each testable alone: long-document encoding (truncate, head+tail, overlapping
chunks), length-grouped batching, the learning-rate schedule, layer-wise lr decay, logit pooling,
and :func:`finetune` — the Python API behind ``nlpkit finetune``. The checkpoint-folder checks are
in :mod:`nlpkit.models.hf_checkpoint`.
torch and transformers are imported inside functions so that importing this module is cheap.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from nlpkit.errors import ConfigError
from nlpkit.seeds import check_seed
# The checkpoint-folder checks live below the commands, with the models that use them; re-exported
# here for callers that import them from nlpkit.finetune.
from nlpkit.models.hf_checkpoint import (  # noqa: F401
    RECOPY,
    TOKENIZER_FILES,
    WEIGHT_FILES,
    check_checkpoint_dir,
    check_loaded_weights,
    check_max_length,
    check_tokenizer_files,
    check_vocab_fits_model,
    position_limit,
    quiet_transformers,
    read_model_config,
    refuse_custom_code,
    unfinished_pretraining,
)

if TYPE_CHECKING:
    from nlpkit.runs import Run

LONG_TEXT_MODES = ("truncate", "head-tail", "chunks")
POOLS = ("mean", "max")


# --- encoding long documents -----------------------------------------------------------------

@dataclass
class Encoded:
    """Token ids of a list of documents; a document may span several sequences (chunks).

    ``seqs[i]`` is a full model input (special tokens included); the sequences of document ``d``
    are ``seqs[starts[d]:starts[d + 1]]`` (contiguous).
    """

    seqs: list[list[int]]
    starts: np.ndarray  # (n_docs + 1,) int64 offsets into seqs

    @property
    def n_docs(self) -> int:
        return len(self.starts) - 1

    def doc_seqs(self, d: int) -> list[list[int]]:
        return self.seqs[self.starts[d]:self.starts[d + 1]]

    def doc_lengths(self) -> np.ndarray:
        """Total tokens of each document (what a batch of it costs)."""
        lens = np.fromiter((len(s) for s in self.seqs), dtype=np.int64, count=len(self.seqs))
        return np.add.reduceat(lens, self.starts[:-1]) if len(lens) else np.zeros(0, dtype=np.int64)


def special_template(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after one text, e.g. ([CLS], [SEP]).

    transformers 5 dropped ``build_inputs_with_special_tokens``; we read the template off one
    encoded word instead, which works for BERT, RoBERTa, DistilBERT and ModernBERT alike.
    """
    with_special = tokenizer("hello", add_special_tokens=True)["input_ids"]
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    n = len(plain)
    for i in range(len(with_special) - n + 1):
        if with_special[i:i + n] == plain:
            return list(with_special[:i]), list(with_special[i + n:])
    return [], []


def head_tail(ids: Sequence[int], budget: int) -> list[int]:
    """First quarter and last three quarters of the budget (Sun et al. 2019, "How to fine-tune
    BERT for text classification?": head 128 + tail 382 of 510 tokens did best on IMDb)."""
    ids = list(ids)
    if len(ids) <= budget:
        return ids
    head = budget // 4
    tail = budget - head
    return ids[:head] + (ids[-tail:] if tail > 0 else [])


def chunk_windows(n_tokens: int, window: int, overlap: int, max_chunks: int) -> list[tuple[int, int]]:
    """(start, end) of overlapping windows covering ``n_tokens`` tokens; at most ``max_chunks``.

    Consecutive windows share ``overlap`` tokens; the last window ends at the document's end.
    A document longer than ``max_chunks`` windows keeps its first ``max_chunks`` windows.
    """
    if n_tokens <= window:
        return [(0, n_tokens)]
    step = window - overlap
    starts = list(range(0, n_tokens - window, step)) + [n_tokens - window]
    return [(s, s + window) for s in starts[:max_chunks]]


def encode_texts(tokenizer, texts: Sequence[str], *, max_length: int, long_text: str = "truncate",
                 overlap: int = 0, max_chunks: int = 8) -> Encoded:
    """Tokenize ``texts`` into model inputs of at most ``max_length`` tokens each.

    ``long_text``: ``truncate`` (keep the start), ``head-tail`` (keep start and end) or
    ``chunks`` (overlapping windows of one document, pooled later). Identical for training and
    prediction, so a model sees documents the same way in both.
    """
    prefix, suffix = special_template(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ConfigError(f"--max-length {max_length} leaves no room for text after the special tokens; use at least {len(prefix) + len(suffix) + 1}.")
    texts = [t if isinstance(t, str) else "" for t in texts]
    with quiet_transformers():
        if long_text == "truncate":
            raw = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=budget)["input_ids"] if texts else []
        else:
            raw = tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"] if texts else []
    seqs: list[list[int]] = []
    starts = [0]
    for ids in raw:
        if long_text == "chunks":
            for a, b in chunk_windows(len(ids), budget, overlap, max_chunks):
                seqs.append(prefix + list(ids[a:b]) + suffix)
        elif long_text == "head-tail":
            seqs.append(prefix + head_tail(ids, budget) + suffix)
        else:
            seqs.append(prefix + list(ids[:budget]) + suffix)
        starts.append(len(seqs))
    return Encoded(seqs=seqs, starts=np.asarray(starts, dtype=np.int64))


# --- batching --------------------------------------------------------------------------------

def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                           mega: int = 50) -> list[np.ndarray]:
    """Shuffled batches of similar-length documents, so dynamic padding wastes little.

    Shuffle, cut into mega-batches of ``mega * batch_size``, sort each by length (longest first),
    cut into batches, then shuffle the batch order (the HF ``LengthGroupedSampler`` idea).
    """
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    span = max(batch_size * mega, batch_size)
    for i in range(0, len(order), span):
        mb = order[i:i + span]
        mb = mb[np.argsort(-lengths[mb], kind="stable")]
        batches.extend(mb[j:j + batch_size] for j in range(0, len(mb), batch_size))
    perm = rng.permutation(len(batches))
    return [batches[k] for k in perm]


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches in decreasing length order (prediction: least padding, no randomness)."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(enc: Encoded, docs: Sequence[int], pad_id: int):
    """Pad the sequences of ``docs`` to the longest one; returns (input_ids, attention_mask, seq_doc)."""
    import torch

    seqs: list[list[int]] = []
    seq_doc: list[int] = []
    for k, d in enumerate(docs):
        for s in enc.doc_seqs(int(d)):
            seqs.append(s)
            seq_doc.append(k)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask, torch.as_tensor(seq_doc, dtype=torch.long)


def pool_logits(logits, seq_doc, n_docs: int, pool: str):
    """Per-document logits from per-chunk logits (mean or max); identity with one chunk each."""
    import torch

    if logits.shape[0] == n_docs:
        return logits
    if pool == "max":
        out = torch.full((n_docs, logits.shape[1]), float("-inf"), dtype=logits.dtype, device=logits.device)
        index = seq_doc.to(logits.device)[:, None].expand_as(logits)
        return out.scatter_reduce(0, index, logits, reduce="amax", include_self=True)
    summed = torch.zeros((n_docs, logits.shape[1]), dtype=logits.dtype, device=logits.device)
    summed = summed.index_add(0, seq_doc.to(logits.device), logits)
    counts = torch.bincount(seq_doc, minlength=n_docs).to(logits.device, logits.dtype)
    return summed / counts[:, None]


# --- optimisation ----------------------------------------------------------------------------

def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to 1, then linear decay to 0 at ``total_steps`` (BERT's schedule)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    return max(0.0, (total_steps - step) / (total_steps - warmup_steps))


_LAYER_RE = re.compile(r"\.layers?\.(\d+)\.")


def layer_id(name: str, n_layers: int) -> int:
    """Depth of a parameter: 0 embeddings, i+1 encoder layer i, n_layers+1 everything on top."""
    m = _LAYER_RE.search(name)
    if m:
        return int(m.group(1)) + 1
    if "embed" in name:
        return 0
    return n_layers + 1


def param_groups(model, *, lr: float, weight_decay: float, layer_decay: float = 1.0,
                 head_lr: float | None = None) -> list[dict]:
    """AdamW groups: no weight decay on biases and norms; layer-wise lr decay (Clark et al. 2020,
    ELECTRA: lr * decay^(depth from top)); the freshly initialised head may get its own lr."""
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        depth = layer_id(name, n_layers)
        no_decay = p.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")
        is_head = depth == n_layers + 1 and not ("pooler" in name or "norm" in name.lower())
        if is_head and head_lr is not None:
            group_lr = head_lr
        else:
            group_lr = lr * layer_decay ** (n_layers + 1 - depth)
        key = (round(group_lr * 1e12), no_decay)
        if key not in groups:
            groups[key] = {"params": [], "lr": group_lr, "weight_decay": 0.0 if no_decay else weight_decay}
        groups[key]["params"].append(p)
    return list(groups.values())


def positive_weights(y, max_weight: float = 30.0) -> np.ndarray:
    """BCE ``pos_weight`` per label: negatives/positives, clipped to [1, max_weight].

    Rare labels get a larger push towards recall; the clip keeps a label with one positive in
    thousands from dominating the loss. A label with no positive gets weight 1.
    """
    y = np.asarray(y.todense() if hasattr(y, "todense") else y, dtype=np.float64)
    pos = y.sum(axis=0)
    neg = y.shape[0] - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    return np.clip(w, 1.0, max_weight)


# --- distributed -----------------------------------------------------------------------------

@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank and world size from the environment set by ``torchrun`` / ``accelerate launch``."""
    try:
        return DistInfo(rank=int(os.environ.get("RANK", "0")), world_size=int(os.environ.get("WORLD_SIZE", "1")),
                        local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError:
        raise ConfigError("RANK/WORLD_SIZE/LOCAL_RANK must be integers; launch with torchrun or accelerate launch.") from None


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when launched with several processes (gloo on CPU, nccl on GPU)."""
    info = dist_info()
    if info.world_size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


# --- Python API ------------------------------------------------------------------------------

def finetune(split_dir: str | os.PathLike, model_dir: str | os.PathLike, *, seed: int = 0,
             runs_dir: str | os.PathLike | None = None, name: str | None = None,
             rule_strategy: str = "auto", progress=None, stage=None, fold: int | None = None,
             **options: Any) -> "Run | None":
    """Fine-tune a local checkpoint on a split and record a scored run (like every baseline).

    Parameters
    ----------
    split_dir : a split folder written by ``nlpkit split`` (train, optional valid, test).
    model_dir : a local Hugging Face checkpoint folder (``nlpkit pretrain`` output, BERT, ...).
    seed : seeds weight initialisation of the head, dropout and batch order.
    runs_dir : the runs registry (default ``$NLPKIT_RUNS_DIR`` or ``./runs``).
    name : optional label stored in ``run.json`` as ``config.name``.
    fold : for a k-fold split, the fold to run on (see :func:`nlpkit.data.fold_split`).
    progress : optional ``rich.progress.Progress``; fine-tuning adds a task to it and advances it.
    stage : optional ``callable(stage_name)`` told when each experiment stage starts.
    options : :class:`~nlpkit.models.transformer.TransformerClassifier` parameters
        (``epochs``, ``lr``, ``batch_size``, ``max_length``, ``long_text``, ...).

    Returns
    -------
    The recorded :class:`~nlpkit.runs.Run` (``None`` on non-zero ranks of a distributed launch,
    which train but do not record).
    """
    import shutil
    import tempfile

    from nlpkit.data import load_experiment_split
    from nlpkit.experiment import run_experiment
    from nlpkit.models.transformer import TransformerClassifier

    check_seed(seed)
    check_checkpoint_dir(model_dir)
    if "max_length" in options:
        check_max_length(model_dir, int(options["max_length"]))
    split = load_experiment_split(split_dir, fold)
    model = TransformerClassifier(model=str(model_dir), seed=seed, **options)
    config = {"split_dir": str(split_dir), **model.get_params()}
    if name:
        config["name"] = name
    extra = {"base_model": base_model_info(model_dir)}
    info = dist_info()
    if info.is_main:
        return run_experiment(model, split, kind="finetune", config=config, seed=seed, runs_root=runs_dir,
                              rule_strategy=rule_strategy, progress=stage, fit_progress=progress, extra_info=extra)
    # Other ranks take part in training (DDP) and record into a scratch registry, thrown away.
    scratch = tempfile.mkdtemp(prefix="nlpkit-rank")
    try:
        run_experiment(model, split, kind="finetune", config=config, seed=seed, runs_root=scratch,
                       rule_strategy=rule_strategy, extra_info=extra)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return None


def base_model_info(model_dir: str | os.PathLike) -> dict:
    """What the fine-tune started from: folder, architecture, size, and the pretraining run if any."""
    import json

    path = Path(model_dir)
    info: dict[str, Any] = {"path": str(path.resolve())}
    try:
        with open(path / "config.json", encoding="utf-8") as fh:
            cfg = json.load(fh)
        info.update({k: cfg.get(k) for k in ("model_type", "num_hidden_layers", "hidden_size", "vocab_size")})
    except (OSError, ValueError):
        pass
    run_json = path.parent / "run.json"  # a model/ folder inside an `nlpkit pretrain` run
    if run_json.is_file():
        try:
            with open(run_json, encoding="utf-8") as fh:
                run = json.load(fh)
            if isinstance(run, dict) and run.get("kind") == "pretrain":
                info["pretrain_run"] = run.get("name")
        except (OSError, ValueError):
            pass
    return info


def validate_options(params: dict) -> None:
    """Reject bad option values and combinations before any work (one-line ConfigError)."""
    def positive_int(key):
        v = params.get(key)
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{key.replace('_', '-')} must be a positive integer, got {v!r}.")

    check_seed(params.get("seed", 0))
    for key in ("epochs", "batch_size", "max_length", "predict_batch_size", "max_chunks", "evals_per_epoch"):
        positive_int(key)
    if params["long_text"] not in LONG_TEXT_MODES:
        raise ConfigError(f"--long-text must be one of {', '.join(LONG_TEXT_MODES)}, got {params['long_text']!r}.")
    if params["pool"] not in POOLS:
        raise ConfigError(f"--pool must be mean or max, got {params['pool']!r}.")
    if not (isinstance(params["lr"], (int, float)) and params["lr"] > 0 and math.isfinite(params["lr"])):
        raise ConfigError(f"--lr must be a positive number, got {params['lr']!r}.")
    if params.get("head_lr") is not None and not params["head_lr"] > 0:
        raise ConfigError(f"--head-lr must be a positive number, got {params['head_lr']!r}.")
    if not 0 < params["layer_decay"] <= 1:
        raise ConfigError(f"--layer-decay must be in (0, 1], got {params['layer_decay']!r}; 1 means no decay.")
    if not 0 <= params["warmup"] < 1:
        raise ConfigError(f"--warmup is a fraction of the training steps in [0, 1), got {params['warmup']!r}.")
    if params["patience"] is not None and params["patience"] < 0:
        raise ConfigError(f"--patience must be >= 0 (0 disables early stopping), got {params['patience']!r}.")
    if params["max_length"] > 8192:
        raise ConfigError(f"--max-length {params['max_length']} is too large; use at most 8192 (512 for BERT-style models).")
    overlap = params.get("chunk_stride")
    if overlap is not None:
        if params["long_text"] != "chunks":
            raise ConfigError("--chunk-stride only applies with --long-text chunks.")
        if overlap < 0 or overlap >= params["max_length"] - 2:
            raise ConfigError(f"--chunk-stride (tokens shared by consecutive chunks) must be in [0, max-length - 2), got {overlap}.")
    if params["pool"] != "mean" and params["long_text"] != "chunks":
        raise ConfigError("--pool only applies with --long-text chunks.")
    if params.get("time_budget") is not None and not params["time_budget"] > 0:
        raise ConfigError(f"--time-budget must be a positive number of seconds, got {params['time_budget']!r}.")
    if params.get("device") not in ("auto", "cpu", "cuda") and not str(params.get("device", "")).startswith("cuda:"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {params.get('device')!r}.")
    if params.get("precision", "auto") not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"--precision must be auto, fp32 or bf16, got {params.get('precision')!r}.")
    if params.get("model") in (None, ""):
        raise ConfigError("no checkpoint given: pass model=<folder> (CLI: --model DIR).")

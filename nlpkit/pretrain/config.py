"""The resolved options of one pretraining run: a dataclass validated up front, saved with the model."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpkit.errors import ConfigError
from nlpkit.seeds import check_seed

# Turc et al. 2019, "Well-Read Students Learn Better" (the BERT miniatures): layers x hidden,
# heads = hidden / 64, intermediate = 4 x hidden.  The learning rates are ours: small models
# tolerate (and need) larger steps; base follows BERT's 1e-4 scaled for short runs.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"layers": 2, "hidden": 128, "lr": 2e-3},
    "mini": {"layers": 4, "hidden": 256, "lr": 1e-3},
    "small": {"layers": 4, "hidden": 512, "lr": 7e-4},
    "medium": {"layers": 8, "hidden": 512, "lr": 5e-4},
    "base": {"layers": 12, "hidden": 768, "lr": 3e-4},
}
ARCHS = ("bert", "modernbert")
PRECISIONS = ("auto", "fp32", "bf16")
SCHEDULES = ("linear", "cosine")
CONFIG_FILE_NAME = "pretrain_config.json"  # the resolved config inside the output folder
MAX_LENGTH_LIMIT = 32768  # beyond this an encoder's attention is not what anyone wants on CPU/1 GPU

# Options that define the training trajectory: a --resume must agree on all of them.  The
# others (how long to train, how often to evaluate/save, compile) may change on resume.
RESUME_FIXED = (
    "corpus", "arch", "layers", "hidden", "heads", "intermediate", "vocab_size", "max_length",
    "lowercase", "strip_accents", "mlm_prob", "whole_word_mask", "batch_size", "grad_accum", "lr",
    "min_lr_ratio", "weight_decay", "beta1", "beta2", "warmup", "schedule", "clip", "seed",
    "heldout_docs", "init_from", "tokenizer",
)


# Options that decide the tokenizer and the token store a --prepare-only folder holds: a --resume
# of that folder must agree on these; the model and training options are chosen then.
PREPARED_FIXED = ("corpus", "vocab_size", "lowercase", "strip_accents", "heldout_docs", "seed", "tokenizer",
                  "init_from", "dataset_options", "tokenizer_sample_docs")


def parse_duration(text: str | float | int | None) -> float | None:
    """'30m', '1h30m', '90s', '45' (seconds) -> seconds; None stays None."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", s)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != s.replace(" ", ""):
        raise ConfigError(f"--time-budget {text!r} is not a duration; write e.g. 30m, 1h30m, 90s or 45 (seconds).")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


@dataclass
class PretrainConfig:
    """Every option of ``nlpkit pretrain``; :meth:`validate` rejects bad combinations before any work.

    Training length: exactly one of ``steps``, ``epochs``, ``time_budget`` (seconds); if none is
    given, ``steps`` = 1000.  One optimizer step sees ``batch_size x grad_accum x world_size``
    blocks of ``max_length`` tokens (the global batch; same semantics single-process or DDP).
    """

    corpus: str | list[str] = ""  # a path or glob pattern, or a list of files
    out: str = ""
    size: str | None = "mini"
    arch: str = "bert"
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    intermediate: int | None = None
    vocab_size: int = 16384
    max_length: int = 128
    lowercase: bool = True
    strip_accents: bool | None = None  # None: strip when lower-casing (BERT's convention)
    steps: int | None = None
    epochs: float | None = None
    time_budget: float | None = None
    batch_size: int = 32
    grad_accum: int = 1
    lr: float | None = None
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.98
    warmup: float = 0.06  # < 1: share of training; >= 1: steps
    schedule: str = "linear"
    clip: float = 1.0
    mlm_prob: float = 0.15
    whole_word_mask: bool = False
    eval_every: int = 100
    eval_blocks: int = 64
    save_every: int = 200
    heldout_docs: float = 0.05  # used when the corpus has no valid part: share (<1) or count
    seed: int = 0
    compile: bool = False
    precision: str = "auto"  # auto: bf16 autocast where the device computes bf16 natively, else fp32
    log_every: int = 10
    threads: int | None = None
    compare_tokenizer: str | None = None
    tokenizer: str | None = None  # reuse this tokenizer folder instead of training one
    init_from: str | None = None
    dataset_options: dict = field(default_factory=dict)
    tokenizer_sample_docs: int | None = None  # train the tokenizer on the first N training documents
    store: str | None = None  # token store folder shared between runs (default: out/token_store)
    num_proc: int | None = None  # processes tokenising the corpus (default: min(cores, 4))

    # -- resolution ----------------------------------------------------------------------------
    def resolved(self) -> "PretrainConfig":
        """A copy with preset dims, heads, intermediate size, lr and training length filled in."""
        c = dataclasses.replace(self)
        if c.size is not None:
            if c.size not in PRESETS:
                raise ConfigError(f"--size {c.size!r} is unknown; choose one of {', '.join(PRESETS)}.")
            preset = PRESETS[c.size]
            c.layers = c.layers if c.layers is not None else preset["layers"]
            c.hidden = c.hidden if c.hidden is not None else preset["hidden"]
            c.lr = c.lr if c.lr is not None else preset["lr"]
        if c.layers is None or c.hidden is None:
            raise ConfigError("give --size or both --layers and --hidden.")
        if c.heads is None:
            c.heads = max(1, c.hidden // 64)
        if c.intermediate is None:
            # BERT: 4 x hidden.  ModernBERT's GeGLU doubles the input projection, so 1.5 x
            # hidden keeps the MLP's parameter count close (ModernBERT-base: 768 -> 1152).
            c.intermediate = 4 * c.hidden if c.arch == "bert" else (3 * c.hidden) // 2
        if c.lr is None:
            c.lr = 1e-3
        if c.steps is None and c.epochs is None and c.time_budget is None:
            c.steps = 1000
        return c

    def validate(self) -> "PretrainConfig":
        """Resolve and check every option; returns the resolved config or raises ConfigError."""
        c = self.resolved()
        check_seed(c.seed)
        if not c.corpus:
            raise ConfigError("no corpus given; pass a split folder, a dataset file or a text file/folder.")
        if not c.out:
            raise ConfigError("no output folder given; pass --out DIR.")
        if c.arch not in ARCHS:
            raise ConfigError(f"--arch {c.arch!r} is unknown; choose bert or modernbert.")
        if c.precision not in PRECISIONS:
            raise ConfigError(f"--precision {c.precision!r} is unknown; choose auto, fp32 or bf16.")
        if c.schedule not in SCHEDULES:
            raise ConfigError(f"--schedule {c.schedule!r} is unknown; choose linear or cosine.")
        for name in ("layers", "hidden", "heads", "intermediate", "batch_size", "grad_accum", "eval_every",
                     "save_every", "eval_blocks", "log_every"):
            if getattr(c, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(c, name)}).")
        if c.hidden % c.heads:
            raise ConfigError(f"--hidden {c.hidden} is not divisible by --heads {c.heads}; pick heads dividing hidden.")
        if c.arch == "modernbert" and (c.hidden // c.heads) % 2:
            raise ConfigError(f"--arch modernbert needs an even head size (hidden/heads = {c.hidden // c.heads}); change --heads.")
        if not 16 <= c.max_length <= MAX_LENGTH_LIMIT:
            raise ConfigError(f"--max-length {c.max_length} is out of range; use 16..{MAX_LENGTH_LIMIT} (e.g. 128, 512).")
        if c.arch == "bert" and c.max_length > 8192:
            raise ConfigError(f"--max-length {c.max_length} is too long for --arch bert (quadratic attention, learned positions); "
                              "use <= 8192 or --arch modernbert.")
        if not 64 <= c.vocab_size <= 1_000_000:
            raise ConfigError(f"--vocab-size {c.vocab_size} is out of range; use 64..1000000 (e.g. 8000-32000).")
        given = [n for n in ("steps", "epochs", "time_budget") if getattr(c, n) is not None]
        if len(given) > 1:
            raise ConfigError("give only one of --steps, --epochs, --time-budget.")
        if c.steps is not None and c.steps < 1:
            raise ConfigError(f"--steps must be >= 1 (got {c.steps}).")
        if c.epochs is not None and not c.epochs > 0:
            raise ConfigError(f"--epochs must be > 0 (got {c.epochs}).")
        if c.time_budget is not None and not c.time_budget > 0:
            raise ConfigError(f"--time-budget must be > 0 (got {c.time_budget}).")
        if not 0.0 < c.mlm_prob < 1.0:
            raise ConfigError(f"--mlm-prob must be between 0 and 1 (got {c.mlm_prob}); 0.15 is BERT's rate.")
        if not (math.isfinite(c.lr) and c.lr > 0):
            raise ConfigError(f"--lr must be a positive number (got {c.lr}).")
        if c.warmup < 0:
            raise ConfigError(f"--warmup must be >= 0 (got {c.warmup}): a share (<1) or a number of steps.")
        if c.threads is not None and c.threads < 1:
            raise ConfigError(f"--threads must be >= 1 (got {c.threads}); leave it out to use torch's default.")
        if c.steps is not None and c.warmup >= 1 and c.warmup >= c.steps:
            raise ConfigError(f"--warmup {c.warmup:g} steps is not shorter than --steps {c.steps}; the learning rate "
                              "would never reach its peak. Use fewer warm-up steps or a share below 1 (e.g. 0.06).")
        if c.clip < 0:
            raise ConfigError(f"--clip must be >= 0 (got {c.clip}); 0 disables clipping.")
        if not 0 <= c.min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio must be in [0, 1] (got {c.min_lr_ratio}).")
        if c.tokenizer and c.init_from:
            raise ConfigError("give --tokenizer or --init-from, not both (--init-from brings its own tokenizer).")
        for name in ("tokenizer_sample_docs", "num_proc"):
            if getattr(c, name) is not None and getattr(c, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(c, name)}).")
        if c.heldout_docs <= 0:
            raise ConfigError(f"heldout_docs must be > 0 (got {c.heldout_docs}).")
        return c

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def save(self, path: Path) -> None:
        """Write the options as pretrain_config.json does (atomically)."""
        from nlpkit._io import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def resume_conflicts(self, stored: "PretrainConfig", fields: tuple[str, ...] = RESUME_FIXED) -> list[tuple[str, Any, Any]]:
        """(option, checkpoint value, current value) for every trajectory-defining option that differs."""
        out = []
        for name in fields:
            a, b = getattr(stored, name), getattr(self, name)
            if isinstance(a, float) or isinstance(b, float):
                if a is None or b is None or not math.isclose(float(a), float(b), rel_tol=1e-9):
                    if a != b:
                        out.append((name, a, b))
            elif a != b:
                out.append((name, a, b))
        return out


def option_name(field_name: str) -> str:
    """The CLI spelling of a config field (for error messages)."""
    return "--" + field_name.replace("_", "-")

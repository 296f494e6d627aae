"""Fine-tuned transformer encoder (BERT, RoBERTa, DistilBERT, MiniLM, ModernBERT, ...) behind the
classifier contract.

Any local Hugging Face checkpoint folder — ``nlpkit pretrain`` output included — gets a
sequence-classification head for the split's labels: cross-entropy for single-label data,
BCE (``problem_type="multi_label_classification"``, optional positive-class weights) for
multi-label data. Training uses dynamic padding over length-grouped batches, warm-up + linear
decay, optional layer-wise lr decay, and early stopping on the validation metric with the best
weights kept. Long documents are truncated, cut to head+tail, or split into overlapping chunks
whose logits are pooled per document — the same way in training and prediction.
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from nlpkit._io import save_pretrained
from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.hf.batching import (
    LONG_TEXT_MODES,
    POOLS,
    Encoded,
    collate,
    encode_texts,
    length_grouped_batches,
    pool_logits,
    sorted_batches,
)
from nlpkit.hf.checkpoint import (
    RECOPY,
    check_checkpoint_dir,
    check_loaded_weights,
    check_max_length,
    check_tokenizer_files,
    check_vocab_fits_model,
    quiet_transformers,
    read_model_config,
    refuse_custom_code,
    unfinished_pretraining,
)
from nlpkit.hf.cls_only import CLS_ONLY, use_cls_only_last_layer
from nlpkit.models.base import Classifier
from nlpkit.seeds import check_seed
from nlpkit.training.distributed import init_distributed, max_over_ranks
from nlpkit.training.optim import adamw, param_groups
from nlpkit.training.precision import autocast_for
from nlpkit.training.schedule import lr_multiplier

LOG_EVERY = 10  # steps between progress reports when ``progress`` is a plain callable
TRUNCATED_WARN_SHARE = 0.25  # warn when more training documents than this are cut at --max-length


class FinetuneWarning(UserWarning):
    """Something the user should know about a fine-tuning run (the CLI prints it on stderr)."""


class TransformerClassifier(Classifier):
    """Sequence classification by fine-tuning a local checkpoint folder (``model=``).

    ``fit(..., progress=)`` takes a ``rich.progress.Progress`` (a task is added and advanced each
    step) or a plain callable, called with a dict (step, loss, tokens/s) every ``LOG_EVERY`` steps
    and with ``{"eval": record}`` after each validation.
    """

    family = "transformer"
    baseline = False  # trained by `nlpkit finetune`; `nlpkit baseline -m transformer` says so
    baseline_hint = "fine-tune transformers with `nlpkit finetune`"
    param_defaults = {
        "model": None,            # local checkpoint folder
        # Chosen on valid across the development suite (docs/benchmarks.md, "Fine-tuning defaults"):
        # the new head starts from nothing and learns at its own, higher rate; early stopping ends
        # the 6 epochs sooner where valid stops improving.
        "epochs": 6,
        "lr": 1e-4,
        "head_lr": 3e-3,          # a new head's rate (None: the body's); a head kept from the checkpoint uses lr
        "batch_size": 16,
        "max_length": 256,
        "long_text": "truncate",  # truncate | head-tail | chunks
        "chunk_stride": None,     # tokens shared by consecutive chunks; None = a quarter of the window
        "max_chunks": 8,
        "pool": "mean",           # mean | max, chunk logits -> document logits
        "pos_weight": False,      # multi-label: BCE positive-class weights for rare labels
        "label_smoothing": 0.0,   # share of each target spread over the classes (Szegedy et al. 2016)
        "layer_decay": 1.0,
        "warmup": 0.1,
        "weight_decay": 0.01,
        "patience": 2,            # evaluations without improvement before stopping; 0 = never stop early
        "evals_per_epoch": 1,
        "time_budget": None,      # seconds of training after which the loop stops (then evaluates)
        # [[epoch, valid], ...]: stop once the best valid so far is below the valid given for the
        # latest such epoch reached (a --tune trial pruned against the reference run's curve)
        "prune_below": None,
        "predict_batch_size": 32,
        # docs timed after fit for speed figures in fit_info (library use); 0 = none: a recorded run
        # times its test part instead (nlpkit.experiment), so the CLI does not time twice
        "throughput_docs": 0,
        "threads": None,          # torch CPU threads; None = torch's default
        "device": "auto",         # auto | cpu | cuda
        # auto: bf16 autocast where the device computes bf16 natively (CUDA with bf16; CPUs with
        # AVX512-BF16 or AMX), else fp32: about 2x faster on such a CPU (docs/benchmarks.md,
        # "nlpkit finetune"). Weights and optimizer state stay fp32 (mixed precision).
        "precision": "auto",      # auto | fp32 | bf16
        "seed": 0,
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        validate_options(self.params)
        # set by nlpkit.finetune for a resumable run; not a parameter: it does not change the result
        self.checkpointing: Checkpointing | None = None

    # -- helpers -------------------------------------------------------------------------------
    def _device(self):
        import torch

        want = self.params["device"]
        if want == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise NlpkitError("--device cuda but no CUDA GPU is available; use --device cpu.")
        return torch.device(want)

    def _overlap(self) -> int:
        if self.params["chunk_stride"] is not None:
            return int(self.params["chunk_stride"])
        return max(0, (self.params["max_length"] - 2) // 4)

    def _encode(self, texts: Sequence[str]) -> Encoded:
        return encode_texts(self.tokenizer_, texts, max_length=self.params["max_length"],
                            long_text=self.params["long_text"], overlap=self._overlap(),
                            max_chunks=self.params["max_chunks"])

    def _pad_id(self) -> int:
        tok = self.tokenizer_
        for cand in (tok.pad_token_id, getattr(tok, "eos_token_id", None), 0):
            if cand is not None:
                return int(cand)
        return 0

    def _autocast(self, device):
        """The autocast context for ``precision`` on ``device`` (see ``param_defaults``)."""
        return autocast_for(self.params["precision"], device)[0]

    def _precision(self, device) -> str:
        return autocast_for(self.params["precision"], device)[1]

    def _load_pretrained(self, label_names: list[str], task: str):
        """Tokenizer + classification model from the checkpoint; warns if the head is replaced."""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = check_checkpoint_dir(self.params["model"])
        check_max_length(path, int(self.params["max_length"]))
        unfinished = unfinished_pretraining(path)
        if unfinished:
            warnings.warn(unfinished, FinetuneWarning, stacklevel=3)
        old_names = _head_label_names(read_model_config(path))
        torch.manual_seed(int(self.params["seed"]))  # the new head's initial weights
        with quiet_transformers():
            try:
                # never the folder's own code, nor transformers' "run the custom code? [y/N]" prompt
                tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
            except Exception as exc:  # transformers raises many types for a broken folder
                raise NlpkitError(f"cannot load the tokenizer from {path} ({_first_line(exc)}); {RECOPY}") from None
            try:
                model, loading = AutoModelForSequenceClassification.from_pretrained(
                    path,
                    local_files_only=True,
                    trust_remote_code=False,
                    use_safetensors=True,  # never a pickled pytorch_model.bin
                    num_labels=len(label_names),
                    id2label=dict(enumerate(label_names)),
                    label2id={name: i for i, name in enumerate(label_names)},
                    problem_type="multi_label_classification" if task == "multi" else "single_label_classification",
                    ignore_mismatched_sizes=True,
                    output_loading_info=True,
                )
            except Exception as exc:
                raise NlpkitError(f"cannot load a classification model from {path} ({_first_line(exc)}); {RECOPY}") from None
        check_vocab_fits_model(tokenizer, model, path)
        random_encoder = check_loaded_weights(model, loading, path, "fine-tuning")
        if random_encoder:
            warnings.warn(f"{len(random_encoder)} encoder tensors are not in {path} and start from random values: "
                          f"{', '.join(random_encoder[:5])}{' ...' if len(random_encoder) > 5 else ''}.",
                          FinetuneWarning, stacklevel=3)
        mismatched = sorted(k[0] if isinstance(k, tuple) else k for k in loading.get("mismatched_keys", ()))
        if mismatched:
            warnings.warn(
                f"the checkpoint's classification head in {path} has another number of labels "
                f"({', '.join(mismatched)}); it was re-initialised for {len(label_names)} labels.",
                FinetuneWarning,
                stacklevel=3,
            )
        elif old_names is not None and old_names != list(label_names) and not loading.get("missing_keys"):
            _reinit_head(model)
            mismatched = ["head"]
            shown = ", ".join(old_names[:4]) + (" ..." if len(old_names) > 4 else "")
            warnings.warn(f"the checkpoint's classification head in {path} was trained for other labels ({shown}); "
                          "it was re-initialised for this split's labels.", FinetuneWarning, stacklevel=3)
        if tokenizer.pad_token_id is None and getattr(tokenizer, "eos_token", None) is not None:
            tokenizer.pad_token = tokenizer.eos_token
        if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.new_head_ = bool(loading.get("missing_keys") or mismatched)
        self.forward_ = CLS_ONLY if use_cls_only_last_layer(model) else "model's own"
        return tokenizer, model

    # -- contract ------------------------------------------------------------------------------
    def fit(self, train, valid=None, progress=None):
        import torch

        self._set_label_space(train)
        p = self.params
        seed = int(p["seed"])
        if p["threads"]:
            torch.set_num_threads(int(p["threads"]))
        device = self._device()
        dist = init_distributed(device.type)
        if device.type == "cuda" and dist.world_size > 1:
            device = torch.device("cuda", dist.local_rank)
        self.tokenizer_, model = self._load_pretrained(self.label_names_, self.task_)
        model.to(device)
        multi = self.task_ == "multi"

        y = np.asarray(train.y.todense(), dtype=np.float32)
        self.unseen_labels_ = self._warn_about_labels(y)
        if self.new_head_:
            init_head_bias(model, y, multi)
        t0 = time.perf_counter()
        enc = self._encode(train.texts)
        enc_valid = self._encode(valid.texts) if valid is not None and len(valid) else None
        y_valid = np.asarray(valid.y.todense()) if enc_valid is not None else None
        tokenize_seconds = time.perf_counter() - t0
        lengths = enc.doc_lengths()
        cut = int(np.sum(lengths >= p["max_length"])) if p["long_text"] != "chunks" else 0
        if p["long_text"] == "truncate" and cut > TRUNCATED_WARN_SHARE * len(lengths):
            warnings.warn(f"{cut / len(lengths):.0%} of the training documents are longer than --max-length "
                          f"{p['max_length']} tokens and are cut to their start: --long-text head-tail (start and end) "
                          "or chunks (every part, pooled; slower) sees more of each.", FinetuneWarning, stacklevel=2)

        config = LoopConfig.from_params(p, n_docs=len(train), world_size=dist.world_size, multi=multi)
        optimizer = adamw(param_groups(model, lr=p["lr"], weight_decay=p["weight_decay"],
                                       layer_decay=p["layer_decay"],
                                       head_lr=p["head_lr"] if self.new_head_ else None),
                          betas=(0.9, 0.999), eps=1e-8)
        pos_weight = torch.as_tensor(positive_weights(y), dtype=torch.float32, device=device) if multi and p["pos_weight"] else None
        targets = torch.as_tensor(y if multi else y.argmax(axis=1), device=device)
        net = model
        if dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        data = TrainData(enc=enc, targets=targets, pos_weight=pos_weight, pad_id=self._pad_id(),
                         batch_rng=np.random.default_rng(seed))

        def valid_metric(m) -> float:
            scores = self._scores(enc_valid, model=m, device=device)
            return _valid_metric(y_valid, scores, self.task_, self.label_names_)

        torch.manual_seed(seed)  # dropout
        checkpointing = self.checkpointing
        if checkpointing is not None:
            checkpointing.write = dist.is_main
        result = train_classifier(model, optimizer, data, config=config, device=device, dist=dist, net=net,
                                  evaluate=valid_metric if enc_valid is not None else None, progress=progress,
                                  checkpointing=checkpointing)

        majority = None
        if enc_valid is not None:  # the valid metric of always scoring every label by its share of train
            majority = _valid_metric(y_valid, np.tile(y.mean(axis=0), (len(y_valid), 1)), self.task_, self.label_names_)
        for message in training_warnings(result.history, result.stopped, majority):
            warnings.warn(message, FinetuneWarning, stacklevel=2)
        if result.best_weights is not None:
            model.load_state_dict(result.best_weights)
        model.to("cpu" if device.type == "cpu" else device)
        model.eval()
        self.model_ = model
        self.train_info_ = {
            "steps": result.step, "total_steps_planned": config.total_steps, "warmup_steps": config.warmup_steps,
            "world_size": dist.world_size, "device": device.type, "precision": self._precision(device),
            "forward": self.forward_,
            "best_step": result.best_step if result.best_weights is not None else result.step,
            "best_valid_metric": result.best_metric if result.best_weights is not None else None,
            "valid_metric_name": ("micro_f1 (tuned rule)" if multi else "accuracy") if enc_valid is not None else None,
            "majority_valid_metric": majority,
            "stopped": result.stopped or "all epochs done", "resumed_from_step": result.resumed_from_step,
            "train_seconds": round(result.train_seconds, 3), "train_cpu_seconds": round(result.train_cpu_seconds, 3),
            "tokenize_seconds": round(tokenize_seconds, 3),
            "train_docs_per_s": result.n_docs_seen / result.train_seconds if result.train_seconds > 0 else None,
            "train_tokens_per_s": result.n_tokens_seen / result.train_seconds if result.train_seconds > 0 else None,
            "n_train_sequences": len(enc.seqs), "truncated_docs": cut if p["long_text"] != "chunks" else None,
            # training documents' length in tokens (special tokens included; at most --max-length but with chunks)
            "train_tokens_per_doc": {q: int(np.percentile(lengths, int(q[1:]))) for q in ("p50", "p95", "p99")}
            if len(lengths) else None,
            "history": result.history, "labels_without_train_examples": self.unseen_labels_,
            "n_parameters": int(sum(t.numel() for t in model.parameters())),
        }
        if dist.is_main and p["throughput_docs"]:
            # valid documents: fit never sees test, and valid comes from the same distribution
            sample = (valid.texts if valid is not None and len(valid) else train.texts)[: int(p["throughput_docs"])]
            self.train_info_.update(self.measure_throughput(sample))
        return self

    def _warn_about_labels(self, y: np.ndarray) -> list[str]:
        """Warn about labels no training document has, and about single-label data with one label;
        returns the unseen label names."""
        counts = y.sum(axis=0)
        unseen = [name for name, n in zip(self.label_names_, counts) if n == 0]
        if unseen:
            shown = ", ".join(unseen[:10]) + (f" (+{len(unseen) - 10} more)" if len(unseen) > 10 else "")
            warnings.warn(f"{len(unseen)} label(s) have no training example and cannot be learned: {shown}; "
                          "documents with them count as misses.", FinetuneWarning, stacklevel=3)
        seen = [name for name, n in zip(self.label_names_, counts) if n > 0]
        if self.task_ != "multi" and len(seen) == 1:
            warnings.warn(f"every training document has the label {seen[0]!r}: there is nothing to tell apart, "
                          "and the model predicts it for every document; check the label column.",
                          FinetuneWarning, stacklevel=3)
        return unseen

    def _scores(self, enc: Encoded, *, model=None, device=None) -> np.ndarray:
        """Probabilities for encoded documents: batches sorted by length, inference mode."""
        import torch

        model = model if model is not None else self.model_
        device = device if device is not None else next(model.parameters()).device
        was_training = model.training
        model.eval()
        n_labels = len(self.label_names_)
        out = np.zeros((enc.n_docs, n_labels), dtype=np.float32)
        pad_id = self._pad_id()
        with torch.inference_mode():
            for docs in sorted_batches(enc.doc_lengths(), int(self.params["predict_batch_size"])):
                ids, mask, seq_doc = collate(enc, docs, pad_id)
                with self._autocast(device):
                    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
                logits = pool_logits(logits, seq_doc, len(docs), self.params["pool"])
                probs = torch.sigmoid(logits) if self.task_ == "multi" else torch.softmax(logits, dim=-1)
                out[docs] = probs.cpu().numpy()
        if was_training:
            model.train()
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        if not hasattr(self, "model_"):
            raise NlpkitError("transformer model has no weights loaded; fit it or load it with load_model().")
        if self.params["threads"]:
            import torch

            torch.set_num_threads(int(self.params["threads"]))
        if len(texts) == 0:
            return np.zeros((0, len(self.label_names_)), dtype=np.float32)
        return self._scores(self._encode(list(texts)))

    def measure_throughput(self, texts: Sequence[str]) -> dict[str, Any]:
        """Prediction speed (docs/s, tokenisation included) at batch size 1 and 32 on ``texts``."""
        import torch

        texts = list(texts)
        if not texts:
            return {}
        result: dict[str, Any] = {"throughput_docs": len(texts), "throughput_threads": torch.get_num_threads()}
        self.predict_proba(texts[:2])  # warm-up
        for bs in (1, 32):
            result[f"predict_docs_per_s_batch{bs}"] = self.docs_per_s(texts, bs)
        return result

    def fit_info(self) -> dict[str, Any]:
        self._check_fitted()
        return copy.deepcopy(getattr(self, "train_info_", {}))

    def save(self, path: Path) -> None:
        path = self._prepare_dir(path)
        if not hasattr(self, "model_"):
            raise NlpkitError("transformer model has no weights to save; fit it first.")
        with quiet_transformers():
            save_pretrained(self.model_, path)  # safetensors + config.json with id2label/label2id
            save_pretrained(self.tokenizer_, path)
        self._write_model_json(path, long_text={"mode": self.params["long_text"], "max_length": self.params["max_length"],
                                                "overlap": self._overlap(), "max_chunks": self.params["max_chunks"],
                                                "pool": self.params["pool"]})

    @classmethod
    def load(cls, path: Path):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model, meta = cls._from_model_json(path)
        path = Path(path)
        if not (path / "model.safetensors").is_file() and not (path / "model.safetensors.index.json").is_file():
            raise NlpkitError(f"no model.safetensors in {path}: the saved transformer model is incomplete; re-run the fine-tuning.")
        check_tokenizer_files(path)
        refuse_custom_code(path, "the run's saved model")  # a run folder may come from someone else
        with quiet_transformers():
            try:
                model.tokenizer_ = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
                model.model_ = AutoModelForSequenceClassification.from_pretrained(
                    path, local_files_only=True, use_safetensors=True, trust_remote_code=False)
            except Exception as exc:
                raise NlpkitError(f"cannot load the transformer model in {path}: {type(exc).__name__}: {exc}".split("\n")[0]) from None
        check_vocab_fits_model(model.tokenizer_, model.model_, path)
        use_cls_only_last_layer(model.model_)
        n = model.model_.config.num_labels
        if n != len(model.label_names_):
            raise NlpkitError(f"{path}: the model has {n} outputs but nlpkit_model.json lists {len(model.label_names_)} labels; re-run the fine-tuning.")
        model.model_.eval()
        model.train_info_ = {}
        return model


# --- the training loop -----------------------------------------------------------------------

@dataclass(frozen=True)
class LoopConfig:
    """The plan of one fine-tuning run, fixed before the first step."""

    epochs: int
    batch_size: int
    steps_per_epoch: int     # per rank: each rank takes every world_size-th batch
    total_steps: int
    warmup_steps: int
    eval_every: int          # steps between evaluations within an epoch
    multi: bool              # BCE over labels (multi-label) or cross-entropy (single-label)
    pool: str                # chunk logits -> document logits
    precision: str           # auto | fp32 | bf16, see TransformerClassifier.param_defaults
    patience: int | None     # evaluations without improvement before stopping; 0/None: never
    time_budget: float | None  # seconds of training steps, then one last evaluation and stop
    label_smoothing: float = 0.0
    prune_below: tuple = ()    # ((epoch, valid), ...) ascending in epoch: TransformerClassifier's prune_below

    @classmethod
    def from_params(cls, p: dict, *, n_docs: int, world_size: int, multi: bool) -> "LoopConfig":
        bs = int(p["batch_size"])
        steps_per_epoch = max(1, math.ceil(n_docs / bs) // world_size)
        total_steps = steps_per_epoch * int(p["epochs"])
        return cls(epochs=int(p["epochs"]), batch_size=bs, steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                   warmup_steps=int(round(p["warmup"] * total_steps)),
                   eval_every=max(1, steps_per_epoch // int(p["evals_per_epoch"])), multi=multi, pool=p["pool"],
                   precision=p["precision"], patience=p["patience"], time_budget=p["time_budget"],
                   label_smoothing=float(p.get("label_smoothing") or 0.0),
                   prune_below=tuple(sorted((float(e), float(v)) for e, v in p.get("prune_below") or ())))


@dataclass
class TrainData:
    """The training set as the loop needs it: encoded documents and their targets on the device."""

    enc: Encoded
    targets: Any                # (n_docs, n_labels) float (multi) or (n_docs,) class ids (single)
    pos_weight: Any             # BCE positive-class weights, or None
    pad_id: int
    batch_rng: np.random.Generator  # batch order; the same seed on every rank (DDP)


@dataclass
class Checkpointing:
    """Where a fine-tuning keeps its training state for ``--resume``, how often, and the state to
    continue from (None: a run from step 0). Written at every evaluation and every ``every_seconds``
    of training; only by the main process under a distributed launch."""

    path: Path
    fingerprint: str             # the run's data, checkpoint and options (:func:`nlpkit.finetune.resume_fingerprint`)
    every_seconds: float = 600.0
    state: dict | None = None
    write: bool = True


@dataclass
class FitState:
    """What happened during training: counters, timings, evaluations and the best weights."""

    step: int = 0
    n_docs_seen: int = 0
    n_tokens_seen: int = 0
    train_seconds: float = 0.0      # wall time of the training steps only (not evaluation)
    train_cpu_seconds: float = 0.0  # process CPU time of the same steps
    best_metric: float = -math.inf
    best_step: int = 0
    best_weights: dict | None = None  # a CPU copy of the state dict at the best evaluation
    history: list[dict] = field(default_factory=list)
    stopped: str | None = None
    resumed_from_step: int | None = None


# FitState fields a resume checkpoint stores as they are (best_weights and history are stored apart)
_RESUMED_FIELDS = ("step", "n_docs_seen", "n_tokens_seen", "train_seconds", "train_cpu_seconds", "best_metric",
                   "best_step")


def _training_state(model, optimizer, state: FitState, *, epoch: int, next_batch: int, epoch_rng: dict,
                    loss_sum: float, loss_n: int, bad_evals: int, fingerprint: str) -> dict:
    """Everything a resumed run needs to take the next step exactly as an uninterrupted one would."""
    from nlpkit.training.rng import rng_state

    return {
        "fingerprint": fingerprint, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "counters": {k: getattr(state, k) for k in _RESUMED_FIELDS},
        "best_weights": state.best_weights, "history": json.dumps(state.history),
        # the batch generator as it was when this epoch's batches were drawn, and how many were taken
        "data": {"epoch": epoch, "next_batch": next_batch, "epoch_rng": json.dumps(epoch_rng)},
        "loss": {"sum": loss_sum, "n": loss_n, "bad_evals": bad_evals}, "rng": rng_state(),
    }


def _budget_clock(state: FitState, config: LoopConfig, dist, device) -> float | None:
    """The share of the time budget spent (None without one), the same on every rank: the largest
    rank's, so that all ranks follow one schedule and stop on the same step (a rank that trained on
    alone would wait forever in its gradient all-reduce)."""
    if config.time_budget is None:
        return None
    clock = state.train_seconds / config.time_budget
    return max_over_ranks(clock, dist, device) if dist.world_size > 1 else clock


def train_classifier(model, optimizer, data: TrainData, *, config: LoopConfig, device, dist,
                     net=None, evaluate: Callable[[Any], float] | None = None, progress=None,
                     checkpointing: Checkpointing | None = None) -> FitState:
    """Fine-tune ``model`` in place for ``config.epochs`` epochs; returns what happened.

    Each ``optimizer`` group's lr is its peak, scaled each step by the schedule. ``net`` runs the
    forward pass (``model`` wrapped in DDP under a distributed launch; default ``model``).
    ``evaluate(model)`` scores the validation set, higher is better (None: no validation, so no
    early stopping nor best weights). Every rank evaluates the same validation set, so all ranks
    stop at the same step without exchanging anything; only rank 0 gets a ``progress``
    (:func:`nlpkit.finetune.finetune`). ``progress``: see :class:`TransformerClassifier`.
    ``checkpointing``: keep the training state for a resume, and continue from its ``state``.
    """
    import torch

    net = model if net is None else net
    for g in optimizer.param_groups:
        g["base_lr"] = g["lr"]  # each group's peak (layer decay, head lr), scaled by the schedule
    state = FitState()
    lengths = data.enc.doc_lengths()
    loss_sum, loss_n, bad_evals = 0.0, 0, 0
    first_epoch, skip = 0, 0
    resume = checkpointing.state if checkpointing is not None else None
    if resume is not None:
        from nlpkit.training.rng import set_rng_state

        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])  # the groups' base_lr come back with it
        for key, value in resume["counters"].items():
            setattr(state, key, type(getattr(state, key))(value))
        state.best_weights = resume["best_weights"]
        state.history = json.loads(resume["history"])
        state.resumed_from_step = state.step
        loss_sum, loss_n, bad_evals = float(resume["loss"]["sum"]), int(resume["loss"]["n"]), int(resume["loss"]["bad_evals"])
        first_epoch, skip = int(resume["data"]["epoch"]), int(resume["data"]["next_batch"])
        data.batch_rng.bit_generator.state = json.loads(resume["data"]["epoch_rng"])
        set_rng_state(resume["rng"])
    last_saved = time.perf_counter()
    clock = _budget_clock(state, config, dist, device)

    def save(epoch: int, next_batch: int, epoch_rng: dict) -> None:
        nonlocal last_saved
        from nlpkit.state_file import save_state

        if checkpointing is not None and checkpointing.write:
            save_state(checkpointing.path, _training_state(
                model, optimizer, state, epoch=epoch, next_batch=next_batch, epoch_rng=epoch_rng, loss_sum=loss_sum,
                loss_n=loss_n, bad_evals=bad_evals, fingerprint=checkpointing.fingerprint))
        last_saved = time.perf_counter()

    task_id = progress.add_task("fine-tuning", total=config.total_steps, completed=state.step) \
        if progress is not None and hasattr(progress, "add_task") else None
    for epoch in range(first_epoch, config.epochs):
        epoch_rng = data.batch_rng.bit_generator.state
        batches = length_grouped_batches(lengths, config.batch_size, data.batch_rng)
        # every rank draws the same batch list (same seed) and takes its own share
        mine = batches[dist.rank::dist.world_size][:config.steps_per_epoch]
        for i, docs in enumerate(mine):
            if skip:  # a resumed run: this epoch's first batches were trained before the interruption
                skip -= 1
                continue
            # one step: forward (autocast), loss, backward, clip, AdamW at the scheduled lr
            model.train()
            t_step, c_step = time.perf_counter(), time.process_time()
            ids, mask, seq_doc = collate(data.enc, docs, data.pad_id)
            ids, mask = ids.to(device), mask.to(device)
            # BERT's schedule: linear warm-up, then linear decay to 0 over the remaining steps; under a
            # time budget over the share of the run done by steps or by the clock, whichever is ahead,
            # so that warm-up and decay fit in the budget (as pretraining's, after Cramming, Geiping &
            # Goldstein 2022) instead of the run being cut off early in the epochs it planned
            if clock is None:
                lr_mult = lr_multiplier(state.step, total_steps=config.total_steps, warmup=config.warmup_steps,
                                        decay_after_warmup=True)
            else:
                lr_mult = lr_multiplier(state.step, progress=max(state.step / config.total_steps, clock),
                                        warmup=config.warmup_steps / config.total_steps, decay_after_warmup=True)
            for g in optimizer.param_groups:
                g["lr"] = g["base_lr"] * lr_mult
            with autocast_for(config.precision, device)[0]:
                logits = net(input_ids=ids, attention_mask=mask).logits.float()
            logits = pool_logits(logits, seq_doc, len(docs), config.pool)
            docs_t = torch.as_tensor(docs, device=device)
            loss = training_loss(logits, data.targets[docs_t], multi=config.multi, pos_weight=data.pos_weight,
                                 label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            state.step += 1
            state.n_docs_seen += len(docs)
            state.n_tokens_seen += int(mask.sum())
            loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
            state.train_seconds += time.perf_counter() - t_step
            state.train_cpu_seconds += time.process_time() - c_step

            # log: a rich progress bar each step, or a plain callable every LOG_EVERY steps
            if task_id is not None:
                progress.update(task_id, advance=1, description=f"fine-tuning loss {loss_sum / loss_n:.4f}")
            elif callable(progress) and (state.step % LOG_EVERY == 0 or state.step == config.total_steps):
                progress({"step": state.step, "total_steps": config.total_steps, "loss": loss_sum / loss_n,
                          "lr_scale": lr_mult,  # the schedule: this step's learning rates as a share of their peaks
                          "train_seconds": round(state.train_seconds, 2),
                          "tokens_per_s": state.n_tokens_seen / state.train_seconds if state.train_seconds else None})

            # evaluate: every eval_every steps (evals_per_epoch per epoch), except within half an
            # interval of the epoch's end, which has its own evaluation; and when time is up
            clock = _budget_clock(state, config, dist, device)
            over_budget = clock is not None and clock >= 1.0
            end_of_epoch = i == len(mine) - 1
            steps_left_in_epoch = len(mine) - (i + 1)
            periodic = state.step % config.eval_every == 0 and steps_left_in_epoch > config.eval_every // 2
            evaluate_now = periodic or end_of_epoch or over_budget
            if not evaluate_now:
                if checkpointing is not None and time.perf_counter() - last_saved >= checkpointing.every_seconds:
                    save(epoch, i + 1, epoch_rng)
                continue
            record = {"step": state.step, "epoch": round(epoch + (i + 1) / len(mine), 3),
                      "train_loss": loss_sum / max(loss_n, 1), "lr_scale": round(lr_mult, 6),
                      "train_seconds": round(state.train_seconds, 2)}
            loss_sum, loss_n = 0.0, 0
            if evaluate is not None:
                record["valid_metric"] = evaluate(model)
                if record["valid_metric"] > state.best_metric:  # keep the best weights
                    state.best_metric, state.best_step, bad_evals = record["valid_metric"], state.step, 0
                    state.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                else:
                    bad_evals += 1
            state.history.append(record)
            floor = pruning_floor(config.prune_below, record["epoch"]) if evaluate is not None else None
            if evaluate is not None and config.patience and bad_evals >= config.patience:
                state.stopped = f"early stop: no improvement in {bad_evals} evaluation(s)"
            elif floor is not None and state.best_metric < floor[1] and state.step < config.total_steps:
                state.stopped = (f"pruned: best valid {state.best_metric:.4f} below {floor[1]:.4f}, "
                                 f"the reference's by epoch {floor[0]:g}")
            elif over_budget:
                state.stopped = f"time budget of {config.time_budget} s reached"
            elif checkpointing is not None and state.step < config.total_steps:  # the last step: nothing to resume
                save(epoch, i + 1, epoch_rng)
            if task_id is None and callable(progress):
                progress({"eval": record})
            if state.stopped:
                break
        if state.stopped:
            break
    if task_id is not None:
        progress.update(task_id, completed=config.total_steps)
    return state


def pruning_floor(prune_below: tuple, epoch: float) -> tuple[float, float] | None:
    """The (epoch, valid) of ``prune_below`` that applies at ``epoch``: the latest one reached."""
    reached = [pair for pair in prune_below if pair[0] <= epoch + 1e-9]
    return reached[-1] if reached else None


# "barely moved": the last evaluation interval's mean training loss above this share of the first's
LOSS_STUCK_RATIO = 0.95


def training_warnings(history: list[dict], stopped: str | None, majority: float | None) -> list[str]:
    """What a user must hear about how a fine-tuning went, from its evaluation ``history``
    (:class:`FitState`), why it ``stopped`` (None: every epoch ran) and the valid metric of always
    predicting the majority (None without valid): stopped while the valid metric was still rising,
    a training loss that barely moved, a valid metric never above the majority level."""
    out: list[str] = []
    evals = [h["valid_metric"] for h in history if h.get("valid_metric") is not None]
    rising = len(evals) >= 2 and evals[-1] > max(evals[:-1])
    if rising and (stopped is None or stopped.startswith("time budget")):
        cause, fix = (("every epoch ran", "more --epochs") if stopped is None else
                      ("the time budget ended training", "a larger --time-budget"))
        out.append(f"{cause} while the valid metric was still rising ({evals[-2]:.4f} -> {evals[-1]:.4f} at the last "
                   f"evaluation): {fix} may help.")
    losses = [h["train_loss"] for h in history if h.get("train_loss") is not None]
    if len(losses) >= 2 and losses[-1] > LOSS_STUCK_RATIO * losses[0]:
        out.append(f"the training loss barely moved ({losses[0]:.4f} over the first evaluation interval, "
                   f"{losses[-1]:.4f} over the last): the model is hardly learning; try a higher --head-lr or --lr, "
                   "or more --epochs.")
    if majority is not None and evals and max(evals) <= majority + 1e-9:
        out.append(f"the valid metric never rose above the majority level ({max(evals):.4f}; always predicting the "
                   f"most common labels scores {majority:.4f}): training diverged or learned nothing; try a lower "
                   "--lr, or check the labels.")
    return out


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _head_label_names(config: dict) -> list[str] | None:
    """The label names a checkpoint's head was trained for (None for transformers' LABEL_i defaults)."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        names = [str(id2label[k]) for k in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        return None
    return None if names == [f"LABEL_{i}" for i in range(len(names))] else names


def _reinit_head(model) -> None:
    """Fresh weights for everything outside the base model (the classification head), as BERT initialises them."""
    import torch

    prefix = getattr(model, "base_model_prefix", "") + "."
    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():
        for name, module in model.named_modules():
            if not name or name.startswith(prefix) or name + "." == prefix:
                continue
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
                if module.bias is not None:
                    module.bias.zero_()


def init_head_bias(model, y: np.ndarray, multi: bool) -> bool:
    """Start a fresh head at the label priors: bias = logit(frequency) (multi) or log(prior) (single).

    With 0 bias every sigmoid starts at 0.5 and the first epoch is spent learning that most labels
    are rare; prior initialisation removes that phase (Lin et al. 2017, Focal Loss, section 4.1).
    Returns False when no output layer with one unit per label is found (the bias is then left alone).
    """
    import torch

    n_labels = y.shape[1]
    head = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == n_labels and module.bias is not None \
                and any(key in name for key in ("classifier", "score", "out_proj", "head")):
            head = module  # the last such layer is the output layer
    if head is None:
        return False
    freq = np.clip(y.mean(axis=0), 1e-4, 1 - 1e-4) if len(y) else np.full(n_labels, 0.5)
    if multi:
        bias = np.log(freq / (1 - freq))
    else:
        bias = np.log(freq / freq.sum())
    with torch.no_grad():
        head.bias.copy_(torch.as_tensor(bias, dtype=head.bias.dtype))
    return True


def _valid_metric(y_valid: np.ndarray, scores: np.ndarray, task: str, label_names: list[str]) -> float:
    """Early-stopping metric: accuracy (single) or micro-F1 under a rule tuned on valid (multi)."""
    from nlpkit.metrics import evaluate, headline_metric, tune_rule

    rule = tune_rule(y_valid, scores, task=task)
    res = evaluate(y_valid, scores, task=task, label_names=label_names, rule=rule)
    return float(res["metrics"][headline_metric(task)])


def read_long_text_options(path: Path) -> dict:
    """The long-text options a saved model was trained with (from nlpkit_model.json)."""
    with open(Path(path) / "nlpkit_model.json", encoding="utf-8") as fh:
        return json.load(fh).get("long_text", {})


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




def training_loss(logits, targets, *, multi: bool, pos_weight=None, label_smoothing: float = 0.0):
    """BCE over labels (multi-label, ``targets`` 0/1 floats) or cross-entropy (``targets`` class ids)."""
    import torch.nn.functional as F

    if not multi:
        return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    if label_smoothing:
        # each label is its own two-class problem: smooth toward 1/2 (Müller et al. 2019, eq. 1 with K = 2)
        targets = targets * (1 - label_smoothing) + label_smoothing / 2
    return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)


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
    smoothing = params.get("label_smoothing", 0.0)
    if not (isinstance(smoothing, (int, float)) and 0 <= smoothing < 1):
        raise ConfigError(f"--label-smoothing is a share of each target in [0, 1), got {smoothing!r}; 0 turns it off.")
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
    prune = params.get("prune_below")
    if prune is not None and not (isinstance(prune, (list, tuple)) and all(
            isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, (int, float)) for x in pair)
            for pair in prune)):
        raise ConfigError(f"prune_below must be a list of [epoch, valid metric] pairs, got {prune!r}.")
    if params.get("device") not in ("auto", "cpu", "cuda") and not str(params.get("device", "")).startswith("cuda:"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {params.get('device')!r}.")
    if params.get("precision", "auto") not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"--precision must be auto, fp32 or bf16, got {params.get('precision')!r}.")
    if params.get("model") in (None, ""):
        raise ConfigError("no checkpoint given: pass model=<folder> (CLI: --model DIR).")

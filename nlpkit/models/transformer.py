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
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nlpkit._io import save_pretrained
from nlpkit.errors import NlpkitError
from nlpkit.finetune import (
    Encoded,
    collate,
    encode_texts,
    init_distributed,
    length_grouped_batches,
    lr_factor,
    param_groups,
    pool_logits,
    positive_weights,
    sorted_batches,
    validate_options,
)
from nlpkit.models.base import Classifier
from nlpkit.models.hf_checkpoint import (
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

LOG_EVERY = 10  # steps between progress reports when ``progress`` is a plain callable
THROUGHPUT_DOCS = 64  # documents timed for the CPU throughput figures recorded in fit_info


class FinetuneWarning(UserWarning):
    """Something the user should know about a fine-tuning run (the CLI prints it on stderr)."""


class TransformerClassifier(Classifier):
    """Sequence classification by fine-tuning a local checkpoint folder (``model=``).

    ``fit(..., progress=)`` takes a ``rich.progress.Progress`` (a task is added and advanced each
    step) or a plain callable, called with a dict (step, loss, tokens/s) every ``LOG_EVERY`` steps
    and with ``{"eval": record}`` after each validation.
    """

    family = "transformer"
    param_defaults = {
        "model": None,            # local checkpoint folder
        "epochs": 3,
        "lr": 5e-5,
        "head_lr": None,          # None: same as lr (after layer decay: the top group)
        "batch_size": 16,
        "max_length": 256,
        "long_text": "truncate",  # truncate | head-tail | chunks
        "chunk_stride": None,     # tokens shared by consecutive chunks; None = a quarter of the window
        "max_chunks": 8,
        "pool": "mean",           # mean | max, chunk logits -> document logits
        "pos_weight": False,      # multi-label: BCE positive-class weights for rare labels
        "layer_decay": 1.0,
        "warmup": 0.1,
        "weight_decay": 0.01,
        "patience": 2,            # evaluations without improvement before stopping; 0 = never stop early
        "evals_per_epoch": 1,
        "time_budget": None,      # seconds of training after which the loop stops (then evaluates)
        "predict_batch_size": 32,
        "throughput_docs": THROUGHPUT_DOCS,  # docs timed after fit for the CPU speed figures; 0 = skip
        "threads": None,          # torch CPU threads; None = torch's default
        "device": "auto",         # auto | cpu | cuda
        # auto: bf16 autocast where the device computes bf16 natively (CUDA with bf16; CPUs with
        # AVX512-BF16 or AMX, where MiniLM fine-tuned at 17.1 samples/s vs 7.2 in fp32 in
        # bench/finetune_bench.py), else fp32.
        # Weights and optimizer state stay fp32 (mixed precision), as in pretraining.
        "precision": "auto",      # auto | fp32 | bf16
        "seed": 0,
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        validate_options(self.params)

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
        from nlpkit.pretrain.train import autocast_for

        return autocast_for(self.params["precision"], device)[0]

    def _precision(self, device) -> str:
        from nlpkit.pretrain.train import autocast_for

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
        return tokenizer, model

    # -- contract ------------------------------------------------------------------------------
    def fit(self, train, valid=None, progress=None):
        import torch
        import torch.nn.functional as F

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
        unseen = [name for name, n in zip(self.label_names_, y.sum(axis=0)) if n == 0]
        if unseen:
            shown = ", ".join(unseen[:10]) + (f" (+{len(unseen) - 10} more)" if len(unseen) > 10 else "")
            warnings.warn(f"{len(unseen)} label(s) have no training example and cannot be learned: {shown}; "
                          "documents with them count as misses.", FinetuneWarning, stacklevel=2)
        self.unseen_labels_ = unseen
        seen = [name for name, n in zip(self.label_names_, y.sum(axis=0)) if n > 0]
        if not multi and len(seen) == 1:
            warnings.warn(f"every training document has the label {seen[0]!r}: there is nothing to tell apart, "
                          "and the model predicts it for every document; check the label column.",
                          FinetuneWarning, stacklevel=2)
        if self.new_head_:
            init_head_bias(model, y, multi)
        t0 = time.perf_counter()
        enc = self._encode(train.texts)
        enc_valid = self._encode(valid.texts) if valid is not None and len(valid) else None
        y_valid = np.asarray(valid.y.todense()) if enc_valid is not None else None
        tokenize_seconds = time.perf_counter() - t0

        lengths = enc.doc_lengths()
        rng = np.random.default_rng(seed)
        bs = int(p["batch_size"])
        n_batches = math.ceil(len(train) / bs)
        steps_per_epoch = max(1, n_batches // dist.world_size)
        total_steps = steps_per_epoch * int(p["epochs"])
        warmup_steps = int(round(p["warmup"] * total_steps))
        groups = param_groups(model, lr=p["lr"], weight_decay=p["weight_decay"], layer_decay=p["layer_decay"], head_lr=p["head_lr"])
        try:  # one fused kernel per step (CPU and CUDA, torch >= 2.4): fewer passes over the weights
            optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8, fused=True)
        except (RuntimeError, TypeError, ValueError):
            optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)
        for g in optimizer.param_groups:
            g["base_lr"] = g["lr"]
        pos_weight = torch.as_tensor(positive_weights(y), dtype=torch.float32, device=device) if multi and p["pos_weight"] else None
        targets = torch.as_tensor(y if multi else y.argmax(axis=1), device=device)

        net = model
        if dist.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

        eval_every = max(1, steps_per_epoch // int(p["evals_per_epoch"]))
        best_metric, best_state, best_step, bad_evals = -math.inf, None, 0, 0
        history: list[dict] = []
        step, n_docs_seen, n_tokens_seen, stopped = 0, 0, 0, None
        train_seconds = train_cpu_seconds = 0.0  # wall and process CPU time of the training steps only
        pad_id = self._pad_id()
        torch.manual_seed(seed)  # dropout
        task_id = progress.add_task("fine-tuning", total=total_steps) if progress is not None and hasattr(progress, "add_task") else None
        loss_sum, loss_n = 0.0, 0
        for epoch in range(int(p["epochs"])):
            batches = length_grouped_batches(lengths, bs, rng)
            # every rank draws the same batch list (same seed) and takes its own share
            mine = batches[dist.rank::dist.world_size][:steps_per_epoch]
            for i, docs in enumerate(mine):
                model.train()
                t_step, c_step = time.perf_counter(), time.process_time()
                ids, mask, seq_doc = collate(enc, docs, pad_id)
                ids, mask = ids.to(device), mask.to(device)
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * lr_factor(step, warmup_steps, total_steps)
                with self._autocast(device):
                    logits = net(input_ids=ids, attention_mask=mask).logits.float()
                logits = pool_logits(logits, seq_doc, len(docs), p["pool"])
                docs_t = torch.as_tensor(docs, device=device)
                if multi:
                    loss = F.binary_cross_entropy_with_logits(logits, targets[docs_t], pos_weight=pos_weight)
                else:
                    loss = F.cross_entropy(logits, targets[docs_t])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                step += 1
                n_docs_seen += len(docs)
                n_tokens_seen += int(mask.sum())
                loss_sum, loss_n = loss_sum + loss.item(), loss_n + 1
                train_seconds += time.perf_counter() - t_step
                train_cpu_seconds += time.process_time() - c_step
                if task_id is not None:
                    progress.update(task_id, advance=1, description=f"fine-tuning loss {loss_sum / loss_n:.4f}")
                elif callable(progress) and (step % LOG_EVERY == 0 or step == total_steps):
                    progress({"step": step, "total_steps": total_steps, "loss": loss_sum / loss_n,
                              "train_seconds": round(train_seconds, 2),
                              "tokens_per_s": n_tokens_seen / train_seconds if train_seconds else None})
                over_budget = p["time_budget"] is not None and train_seconds >= p["time_budget"]
                end_of_epoch = i == len(mine) - 1
                if (step % eval_every == 0 and (i + 1) < len(mine) - eval_every // 2) or end_of_epoch or over_budget:
                    record = {"step": step, "epoch": round(epoch + (i + 1) / len(mine), 3),
                              "train_loss": loss_sum / max(loss_n, 1), "train_seconds": round(train_seconds, 2)}
                    loss_sum, loss_n = 0.0, 0
                    if enc_valid is not None:
                        scores = self._scores(enc_valid, model=model, device=device)
                        record["valid_metric"] = _valid_metric(y_valid, scores, self.task_, self.label_names_)
                        if record["valid_metric"] > best_metric:
                            best_metric, best_step, bad_evals = record["valid_metric"], step, 0
                            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                        else:
                            bad_evals += 1
                    history.append(record)
                    if task_id is None and callable(progress):
                        progress({"eval": record})
                    if enc_valid is not None and p["patience"] and bad_evals >= p["patience"]:
                        stopped = f"early stop: no improvement in {bad_evals} evaluation(s)"
                        break
                    if over_budget:
                        stopped = f"time budget of {p['time_budget']} s reached"
                        break
            if stopped:
                break
        if task_id is not None:
            progress.update(task_id, completed=total_steps)
        if best_state is not None:
            model.load_state_dict(best_state)
        model.to("cpu" if device.type == "cpu" else device)
        model.eval()
        self.model_ = model
        self.train_info_ = {
            "steps": step, "total_steps_planned": total_steps, "warmup_steps": warmup_steps,
            "world_size": dist.world_size, "device": device.type, "precision": self._precision(device),
            "best_step": best_step if best_state is not None else step,
            "best_valid_metric": best_metric if best_state is not None else None,
            "valid_metric_name": ("micro_f1 (tuned rule)" if multi else "accuracy") if enc_valid is not None else None,
            "stopped": stopped or "all epochs done",
            "train_seconds": round(train_seconds, 3), "train_cpu_seconds": round(train_cpu_seconds, 3),
            "tokenize_seconds": round(tokenize_seconds, 3),
            "train_docs_per_s": n_docs_seen / train_seconds if train_seconds > 0 else None,
            "train_tokens_per_s": n_tokens_seen / train_seconds if train_seconds > 0 else None,
            "n_train_sequences": len(enc.seqs), "truncated_docs": int(np.sum(lengths >= p["max_length"])) if p["long_text"] != "chunks" else None,
            "history": history, "labels_without_train_examples": unseen,
            "n_parameters": int(sum(t.numel() for t in model.parameters())),
        }
        if dist.is_main and p["throughput_docs"]:
            # valid documents: fit never sees test, and valid comes from the same distribution
            sample = (valid.texts if valid is not None and len(valid) else train.texts)[: int(p["throughput_docs"])]
            self.train_info_.update(self.measure_throughput(sample))
        return self

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
        saved = self.params["predict_batch_size"]
        result: dict[str, Any] = {"throughput_docs": len(texts), "throughput_threads": torch.get_num_threads()}
        try:
            self.predict_proba(texts[:2])  # warm-up
            for bs in (1, 32):
                self.params["predict_batch_size"] = bs
                t = time.perf_counter()
                self.predict_proba(texts)
                result[f"predict_docs_per_s_batch{bs}"] = len(texts) / (time.perf_counter() - t)
        finally:
            self.params["predict_batch_size"] = saved
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
        n = model.model_.config.num_labels
        if n != len(model.label_names_):
            raise NlpkitError(f"{path}: the model has {n} outputs but nlpkit_model.json lists {len(model.label_names_)} labels; re-run the fine-tuning.")
        model.model_.eval()
        model.train_info_ = {}
        return model


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

"""Checks on a local Hugging Face checkpoint folder, made before and after transformers loads it.

One place for them, below every command that loads such a folder (``nlpkit finetune --model``,
``nlpkit pretrain --init-from / --tokenizer / --compare-tokenizer``, a run's ``model/`` folder read by
``nlpkit predict``). torch and transformers are imported inside functions, so importing this module
is cheap.

A folder is input that may come from anyone: nlpkit never runs Python code shipped in it. Loaders
pass ``trust_remote_code=False`` to every ``from_pretrained``, and :func:`refuse_custom_code` refuses,
in one line and before transformers could print its "run the custom code? [y/N]" prompt, a folder
that could not load without its own code.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Iterator

from nlpkit.errors import ConfigError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
# PyTorch's own weight files are pickles: loading one unpickles a file from someone else (docs/security.md).
PICKLED_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
TO_SAFETENSORS = ("convert it once, with code you trust, to model.safetensors: "
                  "AutoModel.from_pretrained(DIR).save_pretrained(DIR) writes one")
# The fix for a checkpoint folder that transformers cannot load.
RECOPY = "copy the checkpoint folder again, or re-save it with save_pretrained (config.json and weights from the same model)."
# A tokenizer is usable if one of these (sets of) files is present.
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.txt",), ("vocab.json", "merges.txt"), ("spiece.model",),
                   ("sentencepiece.bpe.model",), ("tokenizer.model",))
NO_FOLDER_CODE = ("nlpkit never runs code from a model folder: use a checkpoint whose {kind} transformers ships "
                  "(re-save it with save_pretrained from trusted code)")


class CheckpointWarning(UserWarning):
    """Something about a checkpoint folder the user should know (e.g. its auto_map is ignored)."""


def check_checkpoint_dir(path: str | os.PathLike, what: str = "--model") -> Path:
    """Check that ``path`` is a local Hugging Face folder with config, weights and tokenizer, and
    that loading it needs no code of the folder's own (see :func:`refuse_custom_code`; ``what``,
    e.g. ``"--init-from"``, names the folder there).

    Raises
    ------
    ConfigError
        Missing or not a directory, a required file is absent (named in the message), or the
        folder asks for its own Python code.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"--model folder not found: {path}. Pass a local checkpoint folder (e.g. the output of `nlpkit pretrain`).")
    if not path.is_dir():
        raise ConfigError(f"--model must be a folder, but {path} is a file. Pass the checkpoint folder that holds config.json.")
    if not (path / "config.json").is_file():
        raise ConfigError(f"no config.json in {path}: not a Hugging Face checkpoint folder. Pass the folder written by save_pretrained or `nlpkit pretrain`.")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        other = next((f for f in PICKLED_WEIGHT_FILES if (path / f).is_file()), None)
        if other is not None:
            raise ConfigError(f"{path / other}: nlpkit loads weights only from safetensors files, never from a pickle "
                              f"or another framework's format; {TO_SAFETENSORS}.")
        raise ConfigError(f"no model weights in {path}: expected model.safetensors. Copy the weights into the folder or re-save the model.")
    check_tokenizer_files(path)
    read_model_config(path)
    refuse_custom_code(path, what)
    return path


def refuse_custom_code(path: str | os.PathLike, what: str) -> None:
    """Refuse a folder that transformers could only load by running the folder's own Python code.

    transformers imports ``.py`` files of a folder when an ``auto_map`` in its ``config.json`` or
    ``tokenizer_config.json`` names classes it does not ship (and the user says "y", or passes
    ``trust_remote_code=True``). The rule, per file:

    * ``config.json`` with an ``auto_map``: refused unless ``model_type`` names a configuration
      transformers ships (``CONFIG_MAPPING``) -- a missing or unknown model type needs the folder's
      classes.
    * ``tokenizer_config.json`` with an ``auto_map``: refused unless ``tokenizer_class`` names a
      tokenizer transformers ships. A missing ``tokenizer_class`` is refused too: transformers would
      then decide from the model type, and a tokenizer-only folder has none.

    When an ``auto_map`` sits beside built-in classes, transformers (told ``trust_remote_code=False``)
    loads its own classes and ignores the map: the folder loads, with a :class:`CheckpointWarning`
    per file saying so. Only the two JSON files are read; a file that is not valid JSON is a
    ConfigError with its line and column (as :func:`read_model_config` reports config.json).

    Parameters
    ----------
    path : the folder about to be loaded.
    what : what the folder is to the user, e.g. ``"--tokenizer"`` or ``"the run's model"``, named
        in the message.

    Raises
    ------
    ConfigError
        One line naming the file, its ``auto_map`` and the fix.
    """
    path = Path(path)
    # (file, the field naming the class it needs, whether transformers ships it, the fix's noun)
    for name, field, shipped, kind in (("config.json", "model_type", _shipped_model_type, "model type"),
                                       ("tokenizer_config.json", "tokenizer_class", _shipped_tokenizer, "tokenizer class")):
        file = path / name
        config = _read_json_object(file) if file.is_file() else {}
        if not config.get("auto_map"):
            continue
        value = config.get(field)
        if not shipped(value):
            said = f"no {field}" if value is None else f"{field} {value!r} is not one transformers ships"
            raise ConfigError(
                f"{file} ({what}) asks for the folder's own Python code ({said}; auto_map: "
                f"{_describe(config['auto_map'])}); " + NO_FOLDER_CODE.format(kind=kind) + ".")
        _warn_ignored(file, config["auto_map"], f"{field} {value!r}")


def _shipped_model_type(model_type) -> bool:
    if not isinstance(model_type, str) or not model_type:
        return False
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    return model_type in CONFIG_MAPPING


def _shipped_tokenizer(name) -> bool:
    """Whether transformers itself defines the tokenizer class ``name`` (or ``name`` + "Fast")."""
    if not isinstance(name, str) or not name:
        return False
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    for candidate in (name, name.removesuffix("Fast"), name + "Fast"):
        try:
            cls = tokenizer_class_from_name(candidate)
        except Exception:  # noqa: BLE001 - an odd name is simply not a shipped class
            cls = None
        if cls is not None and cls.__module__.startswith("transformers."):
            return True
    return False


def _warn_ignored(file: Path, auto_map, built_in: str) -> None:
    # stacklevel 2 keeps one warning location, so a folder checked twice is reported once
    warnings.warn(f"{file} has an auto_map ({_describe(auto_map)}), which is ignored: nlpkit loads the "
                  f"{built_in} with transformers' own code, never code from the folder.", CheckpointWarning,
                  stacklevel=2)


def _describe(auto_map, shown: int = 2) -> str:
    """``AutoConfig -> evil.EvilConfig, AutoModel -> evil.EvilModel (+2 more)`` from an auto_map."""
    if isinstance(auto_map, dict):
        items = [f"{key} -> {', '.join(str(v) for v in value if v) if isinstance(value, (list, tuple)) else value}"
                 for key, value in auto_map.items()]
    elif isinstance(auto_map, (list, tuple)):  # the legacy tokenizer form: [slow class, fast class]
        items = [f"AutoTokenizer -> {', '.join(str(v) for v in auto_map if v)}"]
    else:
        items = [str(auto_map)]
    return ", ".join(items[:shown]) + (f" (+{len(items) - shown} more)" if len(items) > shown else "")


def unfinished_pretraining(path: str | os.PathLike) -> str | None:
    """A warning when ``path`` is the folder of an ``nlpkit pretrain`` that did not finish (None otherwise)."""
    try:
        report = json.loads((Path(path) / "pretrain.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("status", "complete") == "complete":
        return None
    return (f"{path} holds an unfinished pretraining (pretrain.json: status {report.get('status')!r}): its weights are "
            "those of the last held-out evaluation. Finish it with `nlpkit pretrain ... --resume` for the full model.")


def check_tokenizer_files(path: str | os.PathLike) -> Path:
    """Refuse a folder without tokenizer files: AutoTokenizer would build one that knows only its
    special tokens, and every word would become [UNK] without an error."""
    path = Path(path)
    if not any(all((path / f).is_file() for f in group) for group in TOKENIZER_FILES):
        raise ConfigError(
            f"no tokenizer in {path}: expected tokenizer.json (or vocab.txt, or vocab.json + merges.txt). "
            "Save the tokenizer into the folder with tokenizer.save_pretrained()."
        )
    return path


def read_model_config(path: str | os.PathLike) -> dict:
    """``config.json`` of a checkpoint folder, with the line and column of a JSON error."""
    return _read_json_object(Path(path) / "config.json")


def _read_json_object(file: Path) -> dict:
    """A checkpoint's JSON file as a dict; ConfigError (with line and column) when it is not one."""
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); restore the file from the "
                          "original checkpoint or re-save the model.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: byte {exc.start} is not UTF-8; restore the file from the original checkpoint.") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{file}: expected a JSON object, found {type(config).__name__}; restore the file from the original checkpoint.")
    return config


def check_vocab_fits_model(tokenizer, model, path: str | os.PathLike) -> None:
    """Refuse a tokenizer with more tokens than the model has embeddings (an IndexError mid-training)."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ConfigError(
            f"the tokenizer in {path} has {len(tokenizer):,} tokens but the model's embeddings have only {rows:,} rows: "
            "the tokenizer and the weights come from different models. Put the tokenizer saved with these weights in the folder."
        )


def check_loaded_weights(model, loading: dict, path: str | os.PathLike, what: str) -> list[str]:
    """Refuse a load that left the encoder untrained; return the few encoder tensors left random.

    transformers reports missing and (with ``ignore_mismatched_sizes``) mismatched tensors instead
    of failing, so a config.json from another model would silently give a randomly initialised
    encoder. Tensors outside the base model (the task head) and the pooler (which MLM checkpoints do
    not have) may be new. A mismatched encoder tensor is an error, and so are missing ones covering
    over a tenth of the encoder's parameters; fewer are returned for the caller to warn about.
    """
    prefix = getattr(model, "base_model_prefix", "") + "."

    def in_encoder(name: str) -> bool:
        return name.startswith(prefix) and ".pooler." not in name

    def encoder_names(key: str) -> list[str]:
        return sorted(n for n in (k[0] if isinstance(k, tuple) else k for k in loading.get(key) or ()) if in_encoder(n))

    missing, mismatched = encoder_names("missing_keys"), encoder_names("mismatched_keys")
    sizes = {name: p.numel() for name, p in model.named_parameters() if in_encoder(name)}
    share = sum(sizes.get(n, 0) for n in missing + mismatched) / (sum(sizes.values()) or 1)
    if mismatched or share > 0.1:
        bad = mismatched or missing
        kind = "have other shapes in" if mismatched else "are missing from"
        raise ConfigError(
            f"{len(bad)} encoder tensors (e.g. {bad[0]}) {kind} the weights in {path}, so {what} would start from "
            "random values: config.json does not describe these weights. Use the config.json saved with them."
        )
    return missing


def position_limit(path: str | os.PathLike) -> int | None:
    """How many tokens the checkpoint's position embeddings allow (None when unknown/unbounded)."""
    try:
        with open(Path(path) / "config.json", encoding="utf-8") as fh:
            cfg = json.load(fh)
    except (OSError, ValueError):
        return None
    limit = cfg.get("max_position_embeddings")
    if not isinstance(limit, int):
        return None
    if cfg.get("model_type") in ("roberta", "xlm-roberta", "camembert", "longformer"):
        limit -= 2  # RoBERTa's positions start after the padding index
    return limit


def check_max_length(path: str | os.PathLike, max_length: int) -> None:
    """Refuse a --max-length the model cannot embed (it would fail deep inside the forward pass)."""
    limit = position_limit(path)
    if limit is not None and max_length > limit:
        raise ConfigError(
            f"--max-length {max_length} exceeds the {limit} positions of the model in {path}; use --max-length {limit} "
            "and --long-text head-tail or chunks for longer documents."
        )


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' own logging and progress bars (we report problems ourselves)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()

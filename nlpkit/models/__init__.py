"""Model families behind one contract (:class:`nlpkit.models.base.Classifier`).

A new family is one module plus one line in :data:`REGISTRY`: what commands need from it beyond the
contract (``nlpkit baseline``: whether it is a baseline, its parameters from the baseline options,
the choices it reports) it declares on its class, with defaults in :class:`Classifier`. Paths are
imported lazily so that listing models, or loading a TF-IDF model, never imports torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.models.base import Classifier, NotFittedError, read_model_json

REGISTRY: dict[str, str] = {
    "majority": "nlpkit.models.majority:MajorityClassifier",
    "tfidf-lr": "nlpkit.models.tfidf_lr:TfidfLogisticRegression",
    "fasttext": "nlpkit.models.fasttext_clf:FastTextClassifier",
    "word2vec": "nlpkit.models.word2vec:Word2VecClassifier",
    "transformer": "nlpkit.models.transformer:TransformerClassifier",
}

__all__ = ["REGISTRY", "Classifier", "NotFittedError", "get_model_class", "load_model", "model_names"]


def model_names() -> list[str]:
    """Registered family names, in registry order."""
    return list(REGISTRY)


def get_model_class(name: str) -> type[Classifier]:
    """The class registered as ``name``.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the known ones).
    NlpkitError
        The family's module or one of its dependencies is not installed.
    """
    if name not in REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(REGISTRY)}.")
    module_name, _, class_name = REGISTRY[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise NlpkitError(f"model {name!r} is not available in this nlpkit install ({module_name} is missing).") from None
        raise NlpkitError(
            f"model {name!r} needs the Python package {exc.name!r}, which is not installed; install it (pip install {exc.name})."
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise NlpkitError(f"model {name!r}: {module_name} has no class {class_name}; the registry entry is wrong.")
    return cls


def load_model(model_dir: str | Path) -> Classifier:
    """Load a saved model: read ``nlpkit_model.json``, pick the family's class, call its ``load``."""
    meta = read_model_json(Path(model_dir))
    return get_model_class(meta["family"]).load(Path(model_dir))

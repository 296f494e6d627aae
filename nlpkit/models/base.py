"""The classifier contract every model family implements (scikit-learn estimator habits).

``__init__`` only stores keyword parameters; ``fit`` learns and returns ``self``; learned state
ends in ``_`` (at least ``label_names_`` and ``task_``); ``predict_proba`` checks it was fitted;
``save``/``load`` use safe formats only and write ``nlpkit_model.json`` naming the family, so
:func:`nlpkit.models.load_model` can find the class again.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np

from nlpkit.errors import ConfigError, NlpkitError

if TYPE_CHECKING:  # Dataset lives in nlpkit.data, which imports pandas
    from typing import Self

    from nlpkit.data import Dataset

MODEL_JSON = "nlpkit_model.json"
TASKS = ("single", "multi")

Progress = Callable[..., Any]


class NotFittedError(NlpkitError):
    """``predict_proba``/``save`` called on a model that was never fitted or loaded."""


class Classifier(ABC):
    """Base class of every model family.

    Subclasses set ``family`` (their registry name) and may set ``param_defaults``: then unknown
    keyword parameters are rejected up front and :meth:`get_params` reports the defaults too.
    """

    family: ClassVar[str]
    param_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any):
        if self.param_defaults:
            unknown = sorted(set(params) - set(self.param_defaults))
            if unknown:
                raise ConfigError(
                    f"unknown parameter(s) {', '.join(unknown)} for model {self.family!r}; "
                    f"known: {', '.join(sorted(self.param_defaults)) or 'none'}."
                )
        self.params: dict[str, Any] = {**self.param_defaults, **params}

    def get_params(self) -> dict[str, Any]:
        """The keyword parameters (defaults included), as passed to ``__init__``."""
        return dict(self.params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # -- the contract --------------------------------------------------------------------------
    @abstractmethod
    def fit(self, train: "Dataset", valid: "Dataset | None" = None, progress: Progress | None = None) -> "Self":
        """Learn from ``train`` (``valid`` may be used for early stopping / tuning); return self.

        Must set ``label_names_`` to ``train.label_names`` (the full label space, including labels
        with no positive in train, which get score 0 or their prior) and ``task_``.
        """

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Scores ``(n_texts, n_labels)`` in [0, 1], columns in ``label_names_`` order.

        Rows sum to 1 for single-label models.
        """

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the fitted model into folder ``path`` (safe formats) plus ``nlpkit_model.json``."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path) -> "Self":
        """Read a model written by :meth:`save`."""

    def fit_info(self) -> dict[str, Any]:
        """Choices made during fit worth recording in run.json (e.g. the tuned C): by default a copy of
        the ``fit_info_`` dict a family's ``fit`` sets (restored by ``load``), else none."""
        return dict(getattr(self, "fit_info_", {}))

    # -- cross-fitting (optional) --------------------------------------------------------------
    def cross_fit_folds(self, task: str) -> int:
        """Folds for cross-fitting on ``task`` data; 0 (the default) = fit on train, decide on valid.

        A family cheap enough to fit k + 1 times returns k: :func:`nlpkit.experiment.run_experiment`
        then calls :meth:`cross_fit` on train + valid instead of :meth:`fit`, and tunes the decision
        rule on the out-of-fold scores of every one of those documents rather than on valid alone.
        """
        return 0

    def cross_fit(self, data: "Dataset", fold_of: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """Out-of-fold scores of ``data`` (each document scored by a model fitted without its fold),
        then fit this model on all of ``data``; returns the scores ``(len(data), n_labels)``.

        ``fold_of[i]`` is the fold (0 .. k-1) of document i. This generic version fits a fresh model
        per fold; families override it to share work between folds (features, vocabularies).
        """
        oof = np.zeros((len(data), data.n_labels))
        for fold in range(int(fold_of.max()) + 1):
            held = fold_of == fold
            model = type(self)(**self.params).fit(data.subset(~held))
            oof[held] = model.predict_proba(data.subset(held).texts)
        self.fit(data, progress=progress)
        return oof

    # -- helpers for subclasses ----------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "label_names_") and hasattr(self, "task_")

    @property
    def n_labels_(self) -> int:
        self._check_fitted()
        return len(self.label_names_)

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"model {self.family!r} is not fitted: call fit() first, or load a saved model with load_model()."
            )

    def _set_label_space(self, train: "Dataset") -> None:
        """Record ``label_names_`` and ``task_`` from the training set."""
        if train.task not in TASKS:
            raise ConfigError(f"unknown task {train.task!r}; expected 'single' or 'multi'.")
        self.label_names_ = list(train.label_names)
        self.task_ = train.task

    def _prepare_dir(self, path: Path) -> Path:
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _write_model_json(self, path: Path, **extra: Any) -> None:
        """Write ``nlpkit_model.json``: family, params, label_names, task, and any ``extra`` keys."""
        from nlpkit.runs import to_jsonable

        self._check_fitted()
        meta = {
            "family": self.family,
            "params": self.get_params(),
            "label_names": list(self.label_names_),
            "task": self.task_,
            **extra,
        }
        with open(Path(path) / MODEL_JSON, "w", encoding="utf-8", newline="\n") as fh:
            json.dump(to_jsonable(meta), fh, indent=2, ensure_ascii=False)
            fh.write("\n")

    @classmethod
    def _from_model_json(cls, path: Path) -> tuple["Self", dict[str, Any]]:
        """A new instance with the saved params and label space; returns ``(model, meta)``.

        Subclass ``load`` methods call this, then restore their own learned state.
        """
        meta = read_model_json(path)
        if meta["family"] != cls.family:
            raise NlpkitError(
                f"{Path(path) / MODEL_JSON} is a {meta['family']!r} model, not {cls.family!r}; "
                f"load it with nlpkit.models.load_model()."
            )
        model = cls(**meta.get("params", {}))
        model.label_names_ = list(meta["label_names"])
        model.task_ = meta["task"]
        model.fit_info_ = dict(meta.get("fit_info") or {})
        return model, meta

    @classmethod
    @contextmanager
    def _reading_state(cls, path: Path, *errors: type[BaseException]):
        """Turn a damaged or missing state file met while loading into one clear NlpkitError.

        Catches OSError, ValueError and KeyError, plus the family's own ``errors``.
        """
        try:
            yield
        except (OSError, ValueError, KeyError, *errors) as exc:
            raise NlpkitError(f"cannot read the {cls.family} model in {path}: {exc}. Re-run the experiment.") from None


def read_model_json(path: Path) -> dict[str, Any]:
    """Read and check ``<path>/nlpkit_model.json``."""
    file = Path(path) / MODEL_JSON
    if not file.is_file():
        raise NlpkitError(f"no {MODEL_JSON} in {path}: not a saved nlpkit model. Pass a run's model/ folder.")
    try:
        with open(file, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as exc:
        raise NlpkitError(f"cannot read {file}: {exc}. The saved model is damaged; re-run the experiment.") from None
    missing = [k for k in ("family", "label_names", "task") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise NlpkitError(f"{file} lacks {', '.join(missing)}: not a model saved by nlpkit. Re-run the experiment.")
    return meta


def normalize_rows(scores: np.ndarray) -> np.ndarray:
    """Make each row a distribution (rows of zeros become uniform)."""
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    sums = scores.sum(axis=1, keepdims=True)
    n_labels = scores.shape[1] if scores.ndim == 2 else 1
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sums > 0, scores / np.where(sums > 0, sums, 1.0), 1.0 / max(n_labels, 1))
    return out

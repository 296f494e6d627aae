"""The classifier contract every model family implements (scikit-learn estimator habits).

``__init__`` only stores keyword parameters; ``fit`` learns and returns ``self``; learned state
ends in ``_`` (at least ``label_names_`` and ``task_``); ``predict_proba`` checks it was fitted;
``save``/``load`` use safe formats only and write ``nlpkit_model.json`` naming the family, so
:func:`nlpkit.models.load_model` can find the class again.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Sequence

import numpy as np

from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.seeds import MAX_SEED  # noqa: F401 - models declare their seed parameter with it

if TYPE_CHECKING:  # Dataset lives in nlpkit.data, which imports pandas
    from typing import Self

    from nlpkit.data import Dataset

MODEL_JSON = "nlpkit_model.json"
TASKS = ("single", "multi")

Progress = Callable[..., Any]


class NotFittedError(NlpkitError):
    """``predict_proba``/``save`` called on a model that was never fitted or loaded."""


class ParamError(ConfigError):
    """A model parameter outside what it accepts; ``key``, ``value`` and ``expected`` say which,
    what it was, and what it may be (``nlpkit baseline`` names the ``--set`` it came from)."""

    def __init__(self, family: str, key: str, value: Any, expected: str):
        self.family, self.key, self.value, self.expected = family, key, value, expected
        self.shown = _shown(value)
        super().__init__(f"{family}: {key} must be {expected}; got {self.shown}.")


def _shown(value: Any) -> str:
    """A parameter value as a user would type it after ``--set``: none, true, 2,5, 'abc'."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(_shown(v) for v in value)
    return repr(value)


@dataclass(frozen=True)
class Param:
    """What one model parameter accepts: a test, and ``expected``, its description in errors."""

    accepts: Callable[[Any], bool]
    expected: str


def is_whole_number(value: Any) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_finite_number(value: Any) -> bool:
    """An int or float (numpy's too), not a bool, not inf or nan."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def _is_one_of(value: Any, specials: tuple) -> bool:
    """``value`` is one of ``specials`` (None, or strings such as "auto"), without 1 == True."""
    return any(value is s or (type(value) is type(s) and value == s) for s in specials)


def _or(expected: str, specials: tuple) -> str:
    if not specials:
        return expected
    names = ["none" if v is None else repr(v) for v in specials]
    return f"{', '.join(names)} or {expected}"


def integer(lo: int, hi: int | None = None, *, also: tuple = ()) -> Param:
    """A whole number in ``[lo, hi]`` (``hi`` None: no upper bound), or one of the values ``also``."""
    expected = f"a whole number >= {lo}" if hi is None else f"a whole number from {lo} to {hi}"
    return Param(lambda v: _is_one_of(v, also) or (is_whole_number(v) and lo <= v and (hi is None or v <= hi)),
                 _or(expected, also))


def number(*, above: float | None = None, at_most: float | None = None, also: tuple = (),
           what: str = "a number") -> Param:
    """A finite number ``> above`` and ``<= at_most`` (either bound optional), or one of ``also``;
    ``what`` names it in errors ("a share of documents")."""
    if above is not None and at_most is not None:
        expected = f"{what} in ({above:g}, {at_most:g}]"
    elif above is not None:
        expected = f"{what} > {above:g}"
    else:
        expected = what if at_most is None else f"{what} <= {at_most:g}"
    return Param(lambda v: _is_one_of(v, also)
                 or (is_finite_number(v) and (above is None or v > above) and (at_most is None or v <= at_most)),
                 _or(expected, also))


def flag() -> Param:
    """True or false."""
    return Param(lambda v: isinstance(v, (bool, np.bool_)), "true or false")


def n_jobs() -> Param:
    """Worker processes: -1 (every CPU) or a whole number >= 1 (None: every CPU)."""
    return Param(lambda v: v is None or (is_whole_number(v) and (v == -1 or v >= 1)),
                 "-1 (every CPU) or a whole number >= 1")


def one_of(*values: Any) -> Param:
    """Exactly one of ``values`` (None written as none)."""
    names = ["none" if v is None else repr(v) for v in values]
    expected = "one of " + ", ".join(names)
    return Param(lambda v: _is_one_of(v, values), expected)


@dataclass(frozen=True)
class BaselineOptions:
    """The options of ``nlpkit baseline`` a family may take (``--seed``, ``--tune``, ``--cv``,
    ``--tune-seconds``, ``--vectors``); None = not given. See :meth:`Classifier.baseline_params`."""

    seed: int = 0
    tune: bool = False
    cv: int | None = None
    tune_seconds: float | None = None
    vectors: str | None = None


# said after a choice's scores when a model kept its reference although another option scored
# higher: nlpkit.metrics.choose_over_reference replaces the reference only on a clear lead
WITHIN_SE = "; kept as the reference: that lead is within about one standard error"


class Classifier(ABC):
    """Base class of every model family.

    Subclasses set ``family`` (their registry name) and may set ``param_defaults``: then unknown
    keyword parameters are rejected up front and :meth:`get_params` reports the defaults too.
    ``param_checks`` says what each parameter accepts (:func:`integer`, :func:`number`, ...):
    a value outside it is a :class:`ParamError` when the model is made, before any training.
    """

    family: ClassVar[str]
    param_defaults: ClassVar[dict[str, Any]] = {}
    param_checks: ClassVar[dict[str, Param]] = {}
    # ``nlpkit baseline`` trains every registered family that keeps this True; one that sets it
    # False is refused there, with ``baseline_hint`` (where it trains instead) when it has one
    baseline: ClassVar[bool] = True
    baseline_hint: ClassVar[str] = ""

    def __init__(self, **params: Any):
        if self.param_defaults:
            unknown = sorted(set(params) - set(self.param_defaults))
            if unknown:
                raise ConfigError(
                    f"unknown parameter(s) {', '.join(unknown)} for model {self.family!r}; "
                    f"known: {', '.join(sorted(self.param_defaults)) or 'none'}."
                )
        self.params: dict[str, Any] = {**self.param_defaults, **params}
        self._check_params()

    def _check_params(self) -> None:
        """Reject a parameter outside ``param_checks`` (families extend this with checks between
        parameters, and may first normalise values, e.g. JSON lists back to tuples)."""
        for key, check in self.param_checks.items():
            if key in self.params and not check.accepts(self.params[key]):
                raise ParamError(self.family, key, self.params[key], check.expected)

    def check_data(self, task: str, n_docs: int) -> None:
        """Raise :class:`ConfigError` when the parameters cannot work on ``n_docs`` documents
        (train + valid) of ``task`` data, e.g. more cross-fit folds than documents. Called before
        any model trains; the default accepts any data."""

    # -- what `nlpkit baseline` needs ------------------------------------------------------------
    @classmethod
    def baseline_params(cls, options: BaselineOptions) -> dict[str, Any]:
        """The parameters ``nlpkit baseline`` makes this family with, from its own options: each
        option given (not None) whose name is one of this family's parameters (``seed``, ``tune``,
        ``cv``, ``tune_seconds``, ``vectors``). Families override it to convert a value."""
        given = {key: getattr(options, key) for key in BaselineOptions.__dataclass_fields__}
        return {key: value for key, value in given.items() if key in cls.param_defaults and value is not None}

    @classmethod
    def describe_choices(cls, fit_info: dict[str, Any]) -> list[tuple[str, str]]:
        """What a fitted model of this family chose by itself, from its recorded ``fit_info``, as
        ``(choice, evidence)`` pairs (``nlpkit baseline`` prints "MODEL chose CHOICE (EVIDENCE)"
        under its table); the default: nothing."""
        return []

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

    def docs_per_s(self, texts: Sequence[str], batch: int) -> float | None:
        """Prediction speed: documents per second scoring ``texts`` in calls of ``batch`` documents
        (tokenisation included; None without texts or time)."""
        texts = list(texts)
        if not texts:
            return None
        t = time.perf_counter()
        for start in range(0, len(texts), batch):
            self.predict_proba(texts[start:start + batch])
        seconds = time.perf_counter() - t
        return len(texts) / seconds if seconds > 0 else None

    def fit_info(self) -> dict[str, Any]:
        """Choices made during fit worth recording in run.json (e.g. the tuned C): by default a copy of
        the ``fit_info_`` dict a family's ``fit`` sets (restored by ``load``), else none."""
        return dict(getattr(self, "fit_info_", {}))

    # -- cross-fitting (optional) --------------------------------------------------------------
    def cross_fit_folds(self, task: str, n_docs: int, n_labels: int | None = None) -> int:
        """Folds for cross-fitting ``n_docs`` documents (train + valid) of ``task`` data with
        ``n_labels`` labels (None: not known yet); 0 (the default) = fit on train, decide on valid.

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
        from nlpkit._io import to_jsonable

        self._check_fitted()
        meta = {
            "family": self.family,
            "params": self.get_params(),
            "label_names": list(self.label_names_),
            "task": self.task_,
            **extra,
            # size and sha256 of every other file, checked on load: a model file cut short (a full
            # disk, an interrupted copy) may otherwise load and predict garbage (fastText does)
            "files": file_records(path),
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
        check_files(path, meta, cls.family)
        if meta["family"] != cls.family:
            raise NlpkitError(
                f"{Path(path) / MODEL_JSON} is a {meta['family']!r} model, not {cls.family!r}; "
                f"load it with nlpkit.models.load_model()."
            )
        try:
            model = cls(**meta.get("params", {}))
        except ConfigError as exc:  # saved by a version that accepted it, or edited
            raise NlpkitError(f"cannot read the {cls.family} model in {path}: {MODEL_JSON}: {exc} {RERUN}") from None
        model.label_names_ = list(meta["label_names"])
        model.task_ = meta["task"]
        model.fit_info_ = dict(meta.get("fit_info") or {})
        return model, meta

    @classmethod
    @contextmanager
    def _reading_state(cls, path: Path, *errors: type[BaseException]):
        """Turn a damaged or missing state file met while loading into one clear NlpkitError
        naming ``path`` (the file read, or the model folder).

        Catches OSError, ValueError, KeyError, EOFError and BadZipFile (numpy on an empty or cut
        ``.npz``; an EOFError reaching the CLI would be Click's bare "Aborted."), and MemoryError
        (fastText's std::bad_alloc on sizes read from a damaged file), plus the family's own ``errors``.
        """
        import zipfile

        try:
            yield
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, MemoryError, *errors) as exc:
            detail = ("the file is damaged (it asks for more memory than there is)" if isinstance(exc, MemoryError)
                      else str(exc) or type(exc).__name__)
            raise NlpkitError(f"cannot read the {cls.family} model in {path}: {detail}. {RERUN}") from None


RERUN = "Re-run the experiment (e.g. nlpkit baseline) to save the model again."


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_records(path: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"bytes", "sha256"}}`` of every file under ``path`` but ``nlpkit_model.json``."""
    path = Path(path)
    return {f.relative_to(path).as_posix(): {"bytes": f.stat().st_size, "sha256": _sha256(f)}
            for f in sorted(path.rglob("*")) if f.is_file() and f.relative_to(path).as_posix() != MODEL_JSON}


def check_files(path: Path, meta: dict[str, Any], family: str) -> None:
    """Check the files ``meta["files"]`` records (see :func:`file_records`): of the same size, with
    the same sha256. A missing file is left to the family's loader, which knows what it holds;
    models saved before the record existed have none and pass."""
    records = meta.get("files")
    if records is None:
        return
    where = f"cannot read the {family} model in {path}"
    if not isinstance(records, dict) or not all(
            isinstance(r, dict) and isinstance(r.get("bytes"), int) and isinstance(r.get("sha256"), str)
            and not Path(name).is_absolute() and ".." not in Path(name).parts  # files of this folder only
            for name, r in records.items()):
        raise NlpkitError(f"{where}: the 'files' record of {MODEL_JSON} is damaged. {RERUN}")
    for name, record in records.items():
        file = Path(path) / name
        if not file.is_file():
            continue
        size = file.stat().st_size
        if size != record["bytes"]:
            raise NlpkitError(f"{where}: {name} has {size:,} bytes but was saved with {record['bytes']:,} "
                              f"(cut short or overwritten). {RERUN}")
        if _sha256(file) != record["sha256"]:
            raise NlpkitError(f"{where}: {name} does not match the sha256 recorded when it was saved "
                              f"(damaged or changed). {RERUN}")


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

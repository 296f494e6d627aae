"""Decision rules: how a (documents x labels) score matrix becomes a boolean prediction matrix.

One class per behaviour, registered by its ``type`` key so a rule recorded in a run's JSON can be
rebuilt with ``DecisionRule.from_dict``. Tuned rules learn thresholds on the validation part in one
vectorised pass (a sort of the scores and a cumulative sum), never by looping over candidates.
``ChooseRule`` picks among a few of those rules by k-fold over the tuning documents.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.metrics import ranking
from nlpkit.metrics._arrays import as_label_matrix, as_score_matrix, safe_divide
from nlpkit.metrics.significance import choose_over_reference, get_metric

TASKS = ("single", "multi")


def _at_least_one(pred: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Give every document without a predicted label its highest-scored label."""
    empty = np.flatnonzero(~pred.any(axis=1))
    if empty.size:
        pred[empty, scores[empty].argmax(axis=1)] = True
    return pred


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return bool(value)


class DecisionRule:
    """Base class: ``fit(y, scores) -> self``, ``predict(scores) -> bool (n, L)``, ``to_dict()``.

    Subclasses set ``type`` (the registry key written by ``to_dict``) and implement ``predict``;
    tuned rules also override ``fit`` and keep learned state in attributes ending in ``_``.
    """

    type: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[DecisionRule]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.type:
            DecisionRule.registry[cls.type] = cls

    def fit(self, y, scores) -> DecisionRule:
        """Learn from validation labels and scores; a no-op for rules without parameters to tune."""
        return self

    def predict(self, scores) -> np.ndarray:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments."""
        return {}

    def state(self) -> dict[str, Any]:
        """Learned (JSON-serialisable) state; empty for rules that need no fitting."""
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        if state:
            raise ConfigError(f"decision rule {self.type!r} has no learned state, got keys {sorted(state)}")

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **self.params(), **self.state()}

    @property
    def is_tuned(self) -> bool:
        """Whether the rule can decide: always for rules without learned state, after ``fit`` (or a
        ``from_dict`` with the learned state) for tuned ones."""
        return True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DecisionRule:
        """Rebuild a rule written by ``to_dict`` (the ``type`` key picks the class)."""
        if not isinstance(d, dict) or "type" not in d:
            raise ConfigError(
                "a decision rule must be a JSON object with a 'type' key, e.g. {'type': 'argmax'}"
            )
        rule_cls = DecisionRule.registry.get(d["type"])
        if rule_cls is None:
            raise ConfigError(
                f"unknown decision rule type {d['type']!r}; known: {', '.join(sorted(DecisionRule.registry))}"
            )
        rest = {k: v for k, v in d.items() if k != "type"}
        param_names = set(rule_cls.param_names)
        try:
            rule = rule_cls(**{k: v for k, v in rest.items() if k in param_names})
        except TypeError as exc:
            raise ConfigError(f"bad parameters for decision rule {d['type']!r}: {exc}") from None
        rule._set_state({k: v for k, v in rest.items() if k not in param_names})
        return rule

    param_names: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable (fit), so unhashable


class Argmax(DecisionRule):
    """Single-label: the highest-scored label (ties go to the lower label index)."""

    type = "argmax"

    def predict(self, scores) -> np.ndarray:
        s = as_score_matrix(scores)
        pred = np.zeros(s.shape, dtype=bool)
        if s.shape[1]:
            pred[np.arange(s.shape[0]), s.argmax(axis=1)] = True
        return pred


class TopK(DecisionRule):
    """The k highest-scored labels of every document (ties go to the lower label index)."""

    type = "top_k"
    param_names = ("k",)

    def __init__(self, k: int = 1):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"top-k needs a whole number k >= 1, got {k!r}")
        self.k = int(k)

    def params(self) -> dict[str, Any]:
        return {"k": self.k}

    def predict(self, scores) -> np.ndarray:
        s = as_score_matrix(scores)
        k = min(self.k, s.shape[1])
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        pred = np.zeros(s.shape, dtype=bool)
        np.put_along_axis(pred, top, True, axis=1)
        return pred


class _ThresholdRule(DecisionRule):
    """Shared by threshold rules: ``scores >= threshold`` (per label or global), then at-least-one."""

    def _thresholds(self, n_labels: int) -> np.ndarray | float:
        raise NotImplementedError

    def predict(self, scores) -> np.ndarray:
        s = as_score_matrix(scores)
        pred = s >= self._thresholds(s.shape[1])
        return _at_least_one(pred, s) if self.at_least_one and s.shape[1] else pred


def _check_threshold(value, name: str = "threshold") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return float(value)


class FixedThreshold(_ThresholdRule):
    """Every label whose score is >= ``threshold`` (default 0.5)."""

    type = "fixed_threshold"
    param_names = ("threshold", "at_least_one")

    def __init__(self, threshold: float = 0.5, at_least_one: bool = True):
        self.threshold = _check_threshold(threshold)
        self.at_least_one = _check_bool(at_least_one, "at_least_one")

    def params(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "at_least_one": self.at_least_one}

    def _thresholds(self, n_labels: int) -> float:
        return self.threshold


def best_global_threshold(y: np.ndarray, scores: np.ndarray, at_least_one: bool) -> tuple[float, float]:
    """The threshold t maximising micro-F1 of ``scores >= t`` (plus the at-least-one fallback).

    Candidates are the scores of the positives, the documents' maximum scores (with at-least-one)
    and "above all scores"; binary searches in the sorted scores give tp and the number of
    predictions for every candidate at once. With at-least-one, a document whose maximum score is
    below t adds its argmax label (tp when that label is true). Among equally good candidates the
    highest threshold wins. The returned threshold is the midpoint between the best
    candidate and the next lower distinct score, so it does not sit on a validation score.
    Returns (threshold, validation micro-F1).
    """
    # Between two consecutive "special" values (a positive's score or a document's maximum), tp
    # and the forced predictions are constant while raising the threshold only drops negatives, so
    # the optimum sits at one of them (or above every score).
    flat_sorted = np.sort(scores, axis=None)
    pos_sorted = np.sort(scores[y])
    doc_max = scores.max(axis=1)
    special = np.unique(np.r_[pos_sorted, doc_max if at_least_one else []])[::-1]
    values = np.r_[np.inf, special]  # candidate 0: above every score, nothing passes
    total = flat_sorted.size
    n_pred = total - np.searchsorted(flat_sorted, values, side="left")
    tp = pos_sorted.size - np.searchsorted(pos_sorted, values, side="left")
    if at_least_one:
        top_is_true = y[np.arange(len(y)), scores.argmax(axis=1)]
        by_max = np.argsort(doc_max, kind="stable")
        forced_tp = np.r_[0, np.cumsum(top_is_true[by_max])]
        forced = np.searchsorted(doc_max[by_max], values, side="left")  # documents with max < t
        tp = tp + forced_tp[forced]
        n_pred = n_pred + forced
    f1 = safe_divide(2 * tp, n_pred + pos_sorted.size)
    best = int(np.argmax(f1))
    if best == 0:
        threshold = float(np.nextafter(flat_sorted[-1], np.inf))
    else:
        below = np.searchsorted(flat_sorted, values[best], side="left") - 1  # next lower distinct score
        threshold = float(_between(values[best], flat_sorted[below])) if below >= 0 else float(values[best])
    return threshold, float(f1[best])


def _between(hi, lo):
    """A threshold t with lo < t <= hi: the midpoint, or hi when they are adjacent floats."""
    mid = (np.asarray(hi, dtype=np.float64) + lo) / 2
    return np.where(mid > lo, mid, hi)


def best_label_thresholds(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per label, the threshold maximising that label's F1 on (y, scores), all labels at once.

    Only the end of a tie group holding a positive can be optimal (raising the threshold past a
    group of negatives only removes false positives), so the candidates are one per positive:
    F1 = 2 tp / (n_predicted + n_pos) there, from one sort of each column. The highest threshold wins
    ties; the threshold is the midpoint to the next lower distinct score (or the lowest score itself
    when every document should be predicted). Labels without positives get F1 0 and a threshold
    just above their top score. Returns (thresholds, best F1 per label).
    """
    n, n_labels = scores.shape
    c = ranking.sort_columns(y, scores)
    thresholds = np.nextafter(c.sorted_scores[:, -1], np.inf)
    best_f1 = np.zeros(n_labels)
    if c.label.size:
        f1 = 2 * c.tp_to_end / (c.end + 1 + c.n_pos[c.label])
        order = np.lexsort((c.end, -f1, c.label))  # by label, then best F1, then highest threshold
        first = order[np.r_[True, c.label[order][1:] != c.label[order][:-1]]]
        label, end, hi = c.label[first], c.end[first], c.value[first]
        # The next lower distinct score: increasing position n - 1 - (end + 1).
        lo = c.sorted_scores[label, np.maximum(n - 2 - end, 0)]
        thresholds[label] = np.where(end < n - 1, _between(hi, lo), hi)
        best_f1[label] = f1[first]
    return thresholds, best_f1


class GlobalThreshold(_ThresholdRule):
    """One threshold for every label, tuned to maximise micro-F1 on the validation part."""

    type = "global_threshold"
    param_names = ("at_least_one",)

    def __init__(self, at_least_one: bool = True):
        self.at_least_one = _check_bool(at_least_one, "at_least_one")
        self.threshold_: float | None = None

    def params(self) -> dict[str, Any]:
        return {"at_least_one": self.at_least_one}

    def state(self) -> dict[str, Any]:
        return {} if self.threshold_ is None else {"threshold": self.threshold_}

    def _set_state(self, state: dict[str, Any]) -> None:
        unknown = set(state) - {"threshold"}
        if unknown:
            raise ConfigError(f"unknown keys for decision rule 'global_threshold': {sorted(unknown)}")
        if "threshold" in state:
            self.threshold_ = _check_threshold(state["threshold"])

    @property
    def is_tuned(self) -> bool:
        return self.threshold_ is not None

    def fit(self, y, scores) -> GlobalThreshold:
        y, s = _fit_inputs(y, scores)
        self.threshold_, self.valid_micro_f1_ = best_global_threshold(y, s, self.at_least_one)
        return self

    def _thresholds(self, n_labels: int) -> float:
        if self.threshold_ is None:
            raise NlpkitError(
                "the global-threshold rule is not tuned yet: call fit(y_valid, scores_valid) first"
            )
        return self.threshold_


class PerLabelThreshold(_ThresholdRule):
    """One threshold per label, each maximising that label's F1 on the validation part.

    Per-label tuning ("SCut") overfits labels with few validation positives: a threshold set on two
    examples says little about the test set (Yang 2001, "A study of thresholding strategies for text
    categorization", SIGIR; Fan & Lin 2007, "A study on threshold selection for multi-label
    classification"). Two guards send a label to the tuned global (micro-F1) threshold instead, both
    recorded in ``fallback_labels``:

    - fewer than ``min_positives`` validation positives;
    - a best validation F1 below ``min_f1`` (Yang's SCutFBR, which falls back to a conservative
      threshold when the tuned F1 is below "fbr"). A label the model never saw in training has a
      constant score, and with any valid positive its F1-optimal threshold is "predict every
      document" (F1 about 2 pos / n); the floor sends it to the global threshold instead.

    ``shrink`` (default 0, off) optionally pulls every tuned threshold toward the global one,
    t = Z t_label + (1 - Z) t_global with Z = n_pos / (n_pos + shrink): Bühlmann's credibility weight
    (Bühlmann 1967, "Experience rating and credibility", ASTIN Bulletin 4(3)), ``shrink`` being the
    number of positives at which a label's own threshold and the global one weigh the same.
    Measurements behind the defaults: docs/benchmarks.md, "Decision rules".
    """

    type = "per_label_threshold"
    param_names = ("min_positives", "at_least_one", "shrink", "min_f1")

    def __init__(
        self, min_positives: int = 5, at_least_one: bool = True, shrink: float = 0.0, min_f1: float = 0.2
    ):
        if (
            isinstance(min_positives, bool)
            or not isinstance(min_positives, (int, np.integer))
            or min_positives < 1
        ):
            raise ConfigError(f"min_positives must be a whole number >= 1, got {min_positives!r}")
        self.min_positives = int(min_positives)
        self.at_least_one = _check_bool(at_least_one, "at_least_one")
        self.shrink = _check_threshold(shrink, "shrink")
        if self.shrink < 0:
            raise ConfigError(f"shrink must be >= 0, got {shrink!r}")
        self.min_f1 = _check_threshold(min_f1, "min_f1")
        if not 0 <= self.min_f1 <= 1:
            raise ConfigError(f"min_f1 must be between 0 and 1, got {min_f1!r}")
        self.thresholds_: np.ndarray | None = None
        self.global_threshold_: float | None = None
        self.fallback_labels_: list[int] = []

    def params(self) -> dict[str, Any]:
        return {
            "min_positives": self.min_positives,
            "at_least_one": self.at_least_one,
            "shrink": self.shrink,
            "min_f1": self.min_f1,
        }

    def state(self) -> dict[str, Any]:
        if self.thresholds_ is None:
            return {}
        return {
            "global_threshold": self.global_threshold_,
            "thresholds": [float(t) for t in self.thresholds_],
            "fallback_labels": list(self.fallback_labels_),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        unknown = set(state) - {"global_threshold", "thresholds", "fallback_labels"}
        if unknown:
            raise ConfigError(f"unknown keys for decision rule 'per_label_threshold': {sorted(unknown)}")
        if "thresholds" in state:
            self.thresholds_ = np.array([_check_threshold(t) for t in state["thresholds"]], dtype=np.float64)
            self.global_threshold_ = _check_threshold(state.get("global_threshold", 0.5), "global_threshold")
            self.fallback_labels_ = [int(i) for i in state.get("fallback_labels", [])]

    @property
    def is_tuned(self) -> bool:
        return self.thresholds_ is not None

    def fit(self, y, scores) -> PerLabelThreshold:
        y, s = _fit_inputs(y, scores)
        self.global_threshold_, _ = best_global_threshold(y, s, self.at_least_one)
        tuned, self.valid_label_f1_ = best_label_thresholds(y, s)
        n_pos = y.sum(axis=0).astype(np.float64)
        if self.shrink > 0:
            tuned = (n_pos * tuned + self.shrink * self.global_threshold_) / (n_pos + self.shrink)
        fallback = (n_pos < self.min_positives) | (self.valid_label_f1_ < self.min_f1)
        self.thresholds_ = np.where(fallback, self.global_threshold_, tuned)
        self.fallback_labels_ = [int(i) for i in np.flatnonzero(fallback)]
        return self

    def _thresholds(self, n_labels: int) -> np.ndarray:
        if self.thresholds_ is None:
            raise NlpkitError(
                "the per-label-threshold rule is not tuned yet: call fit(y_valid, scores_valid) first"
            )
        if len(self.thresholds_) != n_labels:
            raise NlpkitError(
                f"the per-label thresholds were tuned for {len(self.thresholds_)} labels but the scores "
                f"have {n_labels}; tune the rule on scores with the same label space"
            )
        return self.thresholds_[None, :]


def _fit_inputs(y, scores) -> tuple[np.ndarray, np.ndarray]:
    y = as_label_matrix(y, name="y_valid")
    s = as_score_matrix(scores, y.shape, name="scores_valid")
    if y.shape[0] == 0:
        raise NlpkitError("cannot tune a decision rule on an empty validation part; give it documents")
    return y, s


def cardinality_k(y: np.ndarray) -> int:
    """The k of top-k that fits the label cardinality: the mean number of labels per document,
    rounded, at least 1 and below the number of labels (at most L - 1; 1 when L is 1)."""
    n_labels = y.shape[1]
    mean = float(y.sum(axis=1).mean()) if y.shape[0] else 1.0
    return int(min(max(1, round(mean)), max(1, n_labels - 1)))


# The candidates ChooseRule weighs, simplest first: the first is the reference that another must beat
# by more than about one standard error. Each maps (y, scores, options) to a rule fitted on them.
CHOICE_CANDIDATES: dict[str, Callable[[np.ndarray, np.ndarray, ChooseRule], DecisionRule]] = {
    "global": lambda y, s, o: GlobalThreshold(at_least_one=o.at_least_one).fit(y, s),
    "per_label": lambda y, s, o: PerLabelThreshold(at_least_one=o.at_least_one, shrink=o.shrink).fit(y, s),
    "top_k": lambda y, s, o: TopK(cardinality_k(y)),
}


class ChooseRule(DecisionRule):
    """Choose among one global threshold, per-label thresholds and top-k by an honest internal estimate.

    The candidates (``CHOICE_CANDIDATES``): ``global`` (``GlobalThreshold``, the ``auto`` rule);
    ``per_label`` (``PerLabelThreshold`` with its guards: fewer than 5 positives or a tuned F1 below
    0.2 take the global threshold, Yang 2001's SCutFBR; every other label's threshold shrunk toward
    the global one with Bühlmann's credibility weight n_pos / (n_pos + ``shrink``)); ``top_k`` with k
    the rounded label cardinality of the tuning documents (left out with one label).

    Each candidate is judged on documents it was not tuned on: the tuning documents are cut into
    ``folds`` seeded random parts, each candidate is tuned on all parts but one and predicts the one
    left out, and ``metric`` is computed once on the pooled held-out predictions. ``global`` is kept
    unless another candidate is better by more than about one standard error (the 68 % paired-bootstrap
    interval of its advantage above 0, :func:`~nlpkit.metrics.significance.choose_over_reference`):
    per-label thresholds overfit small tuning sets (Fan & Lin 2007, "A study on threshold selection
    for multi-label classification"), so a bare argmax over the candidates would follow the noise.
    The chosen candidate is then tuned on all tuning documents. ``to_dict`` records ``chosen`` (the
    candidate's name), ``rule`` (the fitted rule's own ``to_dict``) and ``evidence``: ``documents``,
    ``folds`` and, per candidate, its held-out ``score`` and ``advantage_68`` (the 68 % interval of its
    score minus the global threshold's; ``k`` for top-k).
    """

    type = "choose"
    param_names = ("at_least_one", "metric", "folds", "shrink", "seed")

    def __init__(self, at_least_one: bool = True, metric: str = "micro_f1", folds: int = 5,
                 shrink: float = 10.0, seed: int = 0):
        self.at_least_one = _check_bool(at_least_one, "at_least_one")
        m = get_metric(metric)
        if not m.greater_is_better or "multi" not in m.tasks:
            raise ConfigError(f"the choose rule needs a multi-label metric where higher is better, got {metric!r}")
        self.metric = m.name
        if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
            raise ConfigError(f"folds must be a whole number >= 2, got {folds!r}")
        self.folds = int(folds)
        self.shrink = _check_threshold(shrink, "shrink")
        if self.shrink < 0:
            raise ConfigError(f"shrink must be >= 0, got {shrink!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")
        self.seed = int(seed)
        self.chosen_: str | None = None
        self.rule_: DecisionRule | None = None
        self.evidence_: dict[str, Any] = {}

    def params(self) -> dict[str, Any]:
        return {"at_least_one": self.at_least_one, "metric": self.metric, "folds": self.folds,
                "shrink": self.shrink, "seed": self.seed}

    def state(self) -> dict[str, Any]:
        if self.rule_ is None:
            return {}
        return {"chosen": self.chosen_, "rule": self.rule_.to_dict(), "evidence": self.evidence_}

    def _set_state(self, state: dict[str, Any]) -> None:
        unknown = set(state) - {"chosen", "rule", "evidence"}
        if unknown:
            raise ConfigError(f"unknown keys for decision rule 'choose': {sorted(unknown)}")
        if "rule" not in state:
            return
        chosen, rule, evidence = state.get("chosen"), state["rule"], state.get("evidence", {})
        if chosen not in CHOICE_CANDIDATES:
            raise ConfigError(f"the choose rule's 'chosen' must be one of {', '.join(CHOICE_CANDIDATES)}, got {chosen!r}")
        if not isinstance(evidence, dict):
            raise ConfigError(f"the choose rule's 'evidence' must be a JSON object, got {evidence!r}")
        inner = DecisionRule.from_dict(rule)
        if isinstance(inner, ChooseRule):
            raise ConfigError("the choose rule's 'rule' must be the chosen rule itself, not another choose rule")
        self.chosen_, self.rule_, self.evidence_ = chosen, inner, evidence

    @property
    def is_tuned(self) -> bool:
        return self.rule_ is not None and self.rule_.is_tuned

    def candidates(self, n_labels: int) -> list[str]:
        """The candidate names weighed for ``n_labels`` labels, reference first."""
        return [name for name in CHOICE_CANDIDATES if name != "top_k" or n_labels >= 2]

    def fit(self, y, scores) -> ChooseRule:
        y, s = _fit_inputs(y, scores)
        names = self.candidates(y.shape[1])
        n = y.shape[0]
        folds = min(self.folds, n)
        evidence: dict[str, Any] = {"documents": int(n), "folds": folds if folds >= 2 else 0, "candidates": {}}
        chosen = names[0]
        if folds >= 2:
            fold_of = np.random.default_rng(self.seed).permutation(n) % folds
            held_out = {name: np.zeros(y.shape, dtype=bool) for name in names}
            for f in range(folds):
                held = fold_of == f
                for name in names:
                    held_out[name][held] = CHOICE_CANDIDATES[name](y[~held], s[~held], self).predict(s[held])
            preds = [held_out[name] for name in names]
            best, intervals = choose_over_reference(y, preds, self.metric, seed=self.seed)
            chosen = names[best]
            metric = get_metric(self.metric)
            for i, name in enumerate(names):
                row: dict[str, Any] = {"score": metric(y, preds[i])}
                if i in intervals:
                    row["advantage_68"] = [float(v) for v in intervals[i]]
                evidence["candidates"][name] = row
        else:
            evidence["note"] = f"{n} tuning document(s): too few to judge, the reference ({chosen}) is kept"
        self.rule_ = CHOICE_CANDIDATES[chosen](y, s, self)
        if "top_k" in evidence["candidates"]:
            evidence["candidates"]["top_k"]["k"] = cardinality_k(y)
        self.chosen_, self.evidence_ = chosen, evidence
        return self

    def predict(self, scores) -> np.ndarray:
        if self.rule_ is None:
            raise NlpkitError("the choose rule is not tuned yet: call fit(y_valid, scores_valid) first")
        return self.rule_.predict(scores)

    def __repr__(self) -> str:
        return super().__repr__() + ("" if self.rule_ is None else f" -> {self.chosen_}: {self.rule_!r}")


# Multi-label strategies for tune_rule: name -> factory(at_least_one) -> untuned rule.
# "auto" is "choose": one global threshold unless per-label thresholds or top-k are clearly better on
# documents they were not tuned on. Per-label thresholds overfit a validation part of a few hundred
# documents (Fan & Lin 2007); on the development suite global was kept for 8 of 9 model x data pairs
# and top-k won one (docs/benchmarks.md, "Development suite").
MULTI_STRATEGIES: dict[str, Callable[[bool], DecisionRule]] = {
    "auto": lambda at_least_one: ChooseRule(at_least_one=at_least_one),
    "per-label": lambda at_least_one: PerLabelThreshold(at_least_one=at_least_one),
    "global": lambda at_least_one: GlobalThreshold(at_least_one=at_least_one),
    "fixed": lambda at_least_one: FixedThreshold(0.5, at_least_one=at_least_one),
    "choose": lambda at_least_one: ChooseRule(at_least_one=at_least_one),
}
# "choose" on single-label data is argmax, as "auto" is.
SINGLE_STRATEGIES = ("auto", "argmax", "choose")
# "topK" with K a whole number written after "top": top1, top3. One spelling only (not "top-3").
_TOP_K = re.compile(r"top(\d+)")
_MULTI_SHOWN = "auto, global, per-label, choose, fixed, topK (e.g. top1)"


def check_strategy(strategy: str, task: str | None = None, n_labels: int | None = None, *,
                   option: str = "decision strategy", data: str = "the data") -> None:
    """Reject a decision strategy before any model trains (:func:`tune_rule` takes the same names).

    Multi-label: ``auto`` / ``global``, ``per-label``, ``choose``, ``fixed``, ``topK`` with
    1 <= K < ``n_labels`` (K at or above the number of labels would predict every label).
    Single-label: ``auto``, ``argmax`` or ``choose`` (all argmax). Without ``task``, any name valid for one of the two passes. ``option`` and ``data``
    name the option and the dataset in messages ("--rule", a split folder).

    Raises
    ------
    ConfigError
        Unknown name, a name for the other task, or K out of range.
    """
    name = str(strategy)
    top_k = _TOP_K.fullmatch(name)
    multi = name in MULTI_STRATEGIES or top_k is not None
    single = name in SINGLE_STRATEGIES
    if re.fullmatch(r"top-\d+", name):
        raise ConfigError(f"unknown {option} {name!r}: topK is written without a hyphen, top{name[4:]}.")
    if not multi and not single:
        raise ConfigError(f"unknown {option} {name!r}; choose one of: {_MULTI_SHOWN} for multi-label "
                          f"data, argmax (= auto, choose) for single-label data.")
    if top_k is not None and int(top_k.group(1)) < 1:
        raise ConfigError(f"{option} {name}: K must be at least 1 (e.g. top1).")
    if task == "single" and not single:
        raise ConfigError(f"{option} {name} is for multi-label data; {data} is single-label, where the decision "
                          f"is argmax: drop {option} or use auto.")
    if task == "multi" and not multi:
        raise ConfigError(f"{option} {name} is for single-label data; {data} is multi-label: choose one of "
                          f"{_MULTI_SHOWN}.")
    if task == "multi" and top_k is not None and n_labels is not None and int(top_k.group(1)) >= n_labels:
        raise ConfigError(f"{option} {name} would predict every one of the {n_labels} labels of {data} for every "
                          f"document; choose K below {n_labels} (e.g. top1).")


def tune_rule(
    y_valid, scores_valid, *, task: str, strategy: str = "auto", at_least_one: bool | None = None
) -> DecisionRule:
    """Choose and fit the decision rule for a task on the validation part.

    Parameters
    ----------
    y_valid, scores_valid
        Validation labels (csr or dense 0/1, n x L) and scores (n x L).
    task
        ``"single"`` -> ``Argmax``. ``"multi"`` -> by ``strategy``: ``"auto"`` / ``"choose"``
        (``ChooseRule``: global, per-label or top-k, judged by k-fold over the tuning documents;
        argmax for single-label data), ``"global"`` (one tuned ``GlobalThreshold``), ``"per-label"``
        (``PerLabelThreshold`` with global fallback), ``"fixed"`` (0.5), ``"topK"`` (e.g. ``"top1"``, ``"top3"``; K below the number of labels).
        See :func:`check_strategy`.
    at_least_one
        None: True unless some tuning document has no label (then empty predictions are legal).
        Callers that also hold the training documents should pass ``False`` when any of those has
        no label either (``run_experiment`` does).

    Returns
    -------
    DecisionRule, fitted.
    """
    if task not in TASKS:
        raise ConfigError(f"task must be 'single' or 'multi', got {task!r}")
    y = as_label_matrix(y_valid, name="y_valid")
    s = as_score_matrix(scores_valid, y.shape, name="scores_valid")
    check_strategy(strategy, task, y.shape[1])
    if task == "single":
        return Argmax()
    if at_least_one is None:
        at_least_one = bool(y.shape[0] == 0 or y.any(axis=1).all())
    top_k = _TOP_K.fullmatch(str(strategy))
    if top_k:
        return TopK(int(top_k.group(1)))
    return MULTI_STRATEGIES[strategy](at_least_one).fit(y, s)


def saved_rule(d: Any, where, n_labels: int | None = None) -> DecisionRule:
    """The tuned rule a file records (``d``, e.g. the ``rule`` of a run's run.json), ready to decide.

    Unlike :meth:`DecisionRule.from_dict`, the rule must be there and tuned, and, with ``n_labels``,
    fit that many labels: a run whose rule is lost or damaged must not predict with another rule.
    Every problem is one :class:`NlpkitError` naming ``where`` (the file).
    """
    rerun = "re-run the experiment to record it again"
    if d is None:
        raise NlpkitError(f"{where} has no decision rule (its 'rule' is missing), so its predictions cannot be "
                          f"reproduced; {rerun}.")
    try:
        rule = DecisionRule.from_dict(d)
    except (NlpkitError, TypeError, ValueError, KeyError) as exc:
        raise NlpkitError(f"{where}: the decision rule is damaged ({exc}); {rerun}.") from None
    if not rule.is_tuned:
        raise NlpkitError(f"{where}: the {rule.type} decision rule has lost its tuned threshold(s); {rerun}.")
    if n_labels is not None:
        try:
            rule.predict(np.zeros((1, n_labels)))  # state that does not fit the label space fails here
        except NlpkitError as exc:
            raise NlpkitError(f"{where}: the decision rule does not fit the model's {n_labels} labels ({exc}); "
                              f"{rerun}.") from None
    return rule


def decide(scores, rule: DecisionRule) -> np.ndarray:
    """Boolean (n, L) predictions of ``rule`` on ``scores``."""
    return rule.predict(scores)

"""Where two models' mistakes differ: agreement counts, McNemar's exact test, example documents and
confusion matrices, for the report's baseline against each other model.

A document is *right* when the predicted label set equals the gold set (the accuracy / subset-accuracy
view), so single- and multi-label splits share one 2 x 2 table: both right, only the model right, only
the baseline right, both wrong. Only the two discordant cells carry evidence about which model is
better; McNemar's test asks whether they are unbalanced (McNemar 1947; Dietterich 1998 recommends it
for two classifiers on one test set).
"""

from __future__ import annotations

from typing import Any

import numpy as np

N_EXAMPLES = 3  # documents shown per discordant kind
TEXT_CHARS = 300  # a shown document is cut to about this many characters
TOP_SCORES = 3  # highest scores shown per model and document
MAX_CONFUSION_LABELS = 30  # a larger confusion matrix is no longer readable on one screen


def mcnemar_exact(only_model: int, only_baseline: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    Under "both models are equally good" a document that one gets right and the other wrong is equally
    likely to go either way, so ``only_model`` ~ Binomial(only_model + only_baseline, 1/2): an exact
    binomial test (no pairs at all: nothing to see, p = 1).
    """
    n = int(only_model) + int(only_baseline)
    if n == 0:
        return 1.0
    from scipy.stats import binomtest  # scipy.stats takes ~0.5 s to import: only when used

    return float(binomtest(int(only_model), n, 0.5).pvalue)


def cut_text(text: str, limit: int = TEXT_CHARS) -> str:
    """``text`` on one line (runs of whitespace as one space), cut at a word near ``limit`` with "…"."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = head.rfind(" ")
    return (head[:space] if space > limit * 0.7 else head).rstrip() + "…"


def _names(row: np.ndarray, label_names: list[str]) -> list[str]:
    return [label_names[j] for j in np.flatnonzero(row)]


def _top_scores(scores: np.ndarray, label_names: list[str]) -> list[list]:
    order = np.argsort(-scores, kind="stable")[:TOP_SCORES]
    return [[label_names[j], round(float(scores[j]), 4)] for j in order]


def _examples(mask: np.ndarray, confidence: np.ndarray, *, y, model, base, test, label_names) -> list[dict]:
    """Up to N_EXAMPLES documents of ``mask``: the model's most confident answers first, then by id, so
    the same runs always show the same documents."""
    picked = sorted(np.flatnonzero(mask), key=lambda i: (-float(confidence[i]), str(test.ids[i])))[:N_EXAMPLES]
    return [{
        "id": test.ids[i],
        "text": cut_text(test.texts[i]),
        "gold": _names(y[i], label_names),
        "model": _names(model.pred[i], label_names),
        "baseline": _names(base.pred[i], label_names),
        "model_scores": _top_scores(model.scores[i], label_names),
        "baseline_scores": _top_scores(base.scores[i], label_names),
    } for i in picked]


def compare_errors(y: np.ndarray, label_names: list[str], model: Any, base: Any, *, test, task: str,
                   examples: bool = True, top_labels: int = 10) -> dict:
    """The 2 x 2 agreement table of ``model`` against ``base`` and McNemar's p-value on it.

    Parameters
    ----------
    y : bool (n_test, n_labels), the gold labels.
    model, base : scored runs (``.run.name``, ``.label``, ``.scores``, ``.pred`` aligned with ``y``).
    test : the split's test part (``ids``, ``texts``), for the examples.
    task : ``"single"`` or ``"multi"``; multi-label adds, per label, the documents where the two differ.
    examples : include example documents (their text); False leaves every text out.

    Returns
    -------
    dict
        ``both_right``, ``only_model_right``, ``only_baseline_right``, ``both_wrong``, ``mcnemar_p``,
        for multi-label ``label_differences`` (top ``top_labels``), and with ``examples`` the
        ``examples`` (``model_right``: the model right, the baseline wrong; ``baseline_right``: the reverse).
    """
    right_m = (model.pred == y).all(axis=1)
    right_b = (base.pred == y).all(axis=1)
    only_m, only_b = right_m & ~right_b, ~right_m & right_b
    out = {
        "run": model.run.name,
        "baseline_run": base.run.name,
        "both_right": int(np.count_nonzero(right_m & right_b)),
        "only_model_right": int(np.count_nonzero(only_m)),
        "only_baseline_right": int(np.count_nonzero(only_b)),
        "both_wrong": int(np.count_nonzero(~right_m & ~right_b)),
        "mcnemar_p": mcnemar_exact(np.count_nonzero(only_m), np.count_nonzero(only_b)),
    }
    if task == "multi":
        differ = model.pred != base.pred  # on one label, the one that differs from the other is right
        n_differ = differ.sum(axis=0)
        model_right = (differ & (model.pred == y)).sum(axis=0)
        order = sorted((j for j in range(len(label_names)) if n_differ[j]),
                       key=lambda j: (-int(n_differ[j]), label_names[j]))[:top_labels]
        out["label_differences"] = [{"label": label_names[j], "documents": int(n_differ[j]),
                                     "model_right": int(model_right[j])} for j in order]
    if examples:
        confidence = model.scores.max(axis=1)
        sides = {"y": y, "model": model, "base": base, "test": test, "label_names": label_names}
        out["examples"] = {"model_right": _examples(only_m, confidence, **sides),
                           "baseline_right": _examples(only_b, confidence, **sides)}
    return out


def confusion_matrix(y: np.ndarray, pred: np.ndarray) -> dict:
    """Single-label counts, gold rows and predicted columns; ``no_single_prediction`` per gold label
    counts documents whose prediction is not exactly one label (present only when there are any)."""
    k = y.shape[1]
    gold = y.argmax(axis=1)
    has_gold = y.sum(axis=1) == 1
    single = pred.sum(axis=1) == 1
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (gold[has_gold & single], pred.argmax(axis=1)[has_gold & single]), 1)
    out: dict = {"counts": counts.tolist()}
    other = np.bincount(gold[has_gold & ~single], minlength=k)
    if other.any():
        out["no_single_prediction"] = other.tolist()
    return out

"""TF-IDF n-grams + logistic regression: the linear baseline every text classifier must beat.

Features are TF-IDF word (optionally character) n-grams; the linear models are fitted by
:mod:`nlpkit.models.liblinear` (one-vs-rest liblinear for multi-label data, multinomial lbfgs for
single-label, or one-vs-rest there too with ``multiclass="ovr"``). A label with no positive in train
scores 0, one positive on every document scores 1.
Decisions (thresholds) are not made here: the metrics layer tunes them on held-out scores, which
:meth:`TfidfLogisticRegression.cross_fit` gives for every train + valid document.

Saved without pickle: the vectoriser's vocabulary as JSON, idf and the coefficients (float32,
dense; see :func:`compact_coefficients`) as ``.npz`` (loaded with ``allow_pickle=False``); the
vectoriser is rebuilt from its parameters on load.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nlpkit.errors import ConfigError, DataError, NlpkitError
from nlpkit.models.base import (WITHIN_SE, Classifier, Param, flag, integer, is_finite_number, is_whole_number,
                               n_jobs, normalize_rows, number, one_of)
from nlpkit.models.liblinear import binary_tasks, fit_linear, linear_scores, multinomial_tasks
from nlpkit.text import tfidf_terms

VOCAB_JSON = "tfidf_vocabulary.json"
ARRAYS_NPZ = "tfidf_lr.npz"

_TUPLE_PARAMS = ("ngram_range", "char_ngrams", "grid_C")


def _is_range(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(is_whole_number(v) for v in value) and 1 <= value[0] <= value[1]


def _as_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value


class TfidfLogisticRegression(Classifier):
    """TF-IDF word (and optionally character) n-grams + logistic regression.

    Parameters (keyword only)
    -------------------------
    ngram_range : (int, int)
        Word n-gram range; 1-2 by default.
    choose_ngrams : "auto" or bool
        Without tuning: also fit word unigrams alone and keep them when their score is clearly
        better, out-of-fold with the cross-fit, else on valid; recorded in
        ``fit_info()["ngram_choice"]``. "auto" (default): only when the median training document
        has at least ``LONG_TEXT_WORDS`` words (see ``param_defaults``).
    char_ngrams : (int, int) or None
        Add character n-grams within word boundaries (``char_wb``), e.g. ``(2, 5)``.
    min_df : int
        Drop n-grams seen in fewer training documents (falls back to 1 if that leaves no feature).
    sublinear_tf : bool
        Use 1 + log(tf) (Manning et al., IR book, sec. 6.4.1).
    C : float
        Inverse L2 regularisation strength.
    class_weight : "balanced" or None
        Weight each class by its inverse frequency (default; see ``param_defaults``).
    multiclass : "multinomial" or "ovr"
        Single-label data: one multinomial model (default), or one binary liblinear model per class,
        its scores normalised to sum to 1 ("ovr": several times faster with many classes).
    prior_shift : "auto", bool
        Single-label data with balanced weights: add the log of each class's share of the training
        documents to its logit, so that predictions expect the classes as often as train holds
        them rather than equally often (Saerens, Latinne & Decaestecker 2002). "auto" (default):
        only when clearly better out of fold, or on valid (``fit_info()["prior_shift_choice"]``).
    tune : bool
        Choose C (and the word n-gram range) on the validation part, or by ``cv``-fold
        cross-validation on train when ``cv`` > 1 or no validation part is given.
    cv : int
        Folds for tuning by cross-validation (0 = use the validation part).
    grid_C : tuple of float
        C values tried when tuning.
    seed : int
        Seed for the cross-validation folds and the solver.
    """

    family = "tfidf-lr"
    param_defaults = {
        "ngram_range": (1, 2),
        # unigrams replace ngram_range only on a clear lead (nlpkit.metrics.choose_over_reference);
        # "auto": tried on long texts only, the only ones where they ever led out of fold, which
        # saves their fits on short ones (docs/benchmarks.md, "Development suite")
        "choose_ngrams": "auto",
        "char_ngrams": None,
        "min_df": 2,
        "max_df": 1.0,
        "sublinear_tf": True,
        "max_features": None,
        # unit-norm sublinear tf-idf rows suit a weak penalty; chosen on Reuters train only
        # (docs/benchmarks.md, "Evidence behind the defaults")
        "C": 100.0,
        # a rare label's few positives otherwise barely move its one-vs-rest model
        "class_weight": "balanced",
        # one-vs-rest was 2-20x faster and as good or better out of fold on six single-label sets,
        # but worse by more than one standard error on TREC-50: an option (docs/benchmarks.md)
        "multiclass": "multinomial",
        # undoing the balanced weights' equal class shares costs no fit (an intercept shift), so it
        # is always tried; it won out of fold on TREC-6 alone (docs/benchmarks.md, "Development suite")
        "prior_shift": "auto",
        # None = per solver: liblinear's own 0.1 for the one-vs-rest models (same scores as 1e-4 in
        # half the time, docs/benchmarks.md), scikit-learn's 1e-4 for the multinomial lbfgs
        "tol": None,
        "max_iter": 1000,
        "tune": False,
        "cv": 0,
        "grid_C": (10.0, 30.0, 100.0),
        # folds of the cross-fit over train + valid, then a refit on both (see cross_fit); 0 = fit on
        # train, decide on valid; 3 folds chose the same threshold as 4 and 5 on Reuters, for less
        "cross_fit": 3,
        # above this many documents in train + valid, fit on train and decide on valid (None = always
        # cross-fit): the cross-fit's gain shrinks as data grows while it costs 7 fits against 2
        # (docs/benchmarks.md, "Larger data")
        "cross_fit_max_docs": 50_000,
        # multi-label: above this many documents x labels, the same: each label's model reads every
        # document, so one fit costs about that; the cross-fit's five fits then cost several times
        # the plain recipe's one (cooking tags, 12,404 x 736: docs/benchmarks.md, "Development suite")
        "cross_fit_max_label_docs": 2_000_000,
        # Worker processes for the per-label models (-1 = every CPU); results do not depend on it.
        "n_jobs": -1,
        "seed": 0,
    }

    param_checks = {
        "ngram_range": Param(lambda v: _is_range(v), "two whole numbers lo,hi with 1 <= lo <= hi (e.g. 1,2)"),
        "choose_ngrams": one_of("auto", True, False),
        "char_ngrams": Param(lambda v: v is None or _is_range(v),
                             "none or two whole numbers lo,hi with 1 <= lo <= hi (e.g. 2,5)"),
        "min_df": integer(1),
        # a share only: scikit-learn would read a whole number as a count of documents (1 = "at most one")
        "max_df": number(above=0, at_most=1, what="a share of documents"),
        "sublinear_tf": flag(),
        "max_features": integer(1, also=(None,)),
        "C": number(above=0),
        "class_weight": one_of(None, "balanced"),
        "multiclass": one_of("multinomial", "ovr"),
        "prior_shift": one_of("auto", True, False),
        "tol": number(above=0, also=(None,)),
        "max_iter": integer(1),
        "tune": flag(),
        "cv": Param(lambda v: is_whole_number(v) and (v == 0 or v >= 2),
                    "0 (tune on the validation part) or a whole number of folds >= 2"),
        "grid_C": Param(lambda v: isinstance(v, tuple) and len(v) > 0 and all(is_finite_number(c) and c > 0 for c in v),
                        "one or more numbers > 0 (e.g. 10,30,100)"),
        "cross_fit": Param(lambda v: is_whole_number(v) and (v == 0 or v >= 2), "0 (off) or a whole number of folds >= 2"),
        "cross_fit_max_docs": integer(1, also=(None,)),
        "cross_fit_max_label_docs": integer(1, also=(None,)),
        "n_jobs": n_jobs(),
        "seed": integer(0, 2**32 - 1),
    }

    def _check_params(self) -> None:
        p = self.params
        for key in _TUPLE_PARAMS:  # JSON round trips turn tuples into lists; keep get_params stable
            p[key] = _as_tuple(p[key])
        if is_finite_number(p["grid_C"]):  # one C: --set tfidf-lr.grid_C=30
            p["grid_C"] = (p["grid_C"],)
        super()._check_params()
        p["max_df"] = float(p["max_df"])  # max_df=1 is every document, not one

    def check_data(self, task: str, n_docs: int) -> None:
        """Cross-fitting needs at least two documents per fold (see
        :func:`nlpkit.experiment.cross_fit_folds`); more folds would silently turn it off."""
        p = self.params
        key = "cv" if p["tune"] and p["cv"] else "cross_fit"  # cv: also when tuning without the cross-fit
        k = int(p[key]) if key == "cv" else self.cross_fit_folds(task, n_docs)
        if k and n_docs < 2 * k:
            fix = ("choose fewer folds with --cv" if key == "cv" else
                   "set fewer folds (--set tfidf-lr.cross_fit=N), or 0 to fit on train and decide on valid")
            raise ConfigError(f"tfidf-lr: {key}={k} folds need at least {2 * k} documents in train + valid "
                              f"(two per fold), and there are {n_docs}; {fix}.")

    @classmethod
    def describe_choices(cls, fit_info: dict[str, Any]) -> list[tuple[str, str]]:
        """Its word n-grams (out-of-fold, or on valid; or why unigrams were not tried), its prior
        shift (when made, or close), or its tuned C and n-grams (``tune``), with the scores it chose
        by; "no cross-fit" on data over ``cross_fit_max_docs`` or ``cross_fit_max_label_docs``."""
        out: list[tuple[str, str]] = []
        ngrams = fit_info.get("ngram_choice")
        if ngrams:
            chosen, ref = tuple(ngrams["chosen"]), tuple(ngrams["reference"])
            other = (1, 1) if chosen == ref else ref
            scores = ngrams.get("out_of_fold") or ngrams["valid"]  # cross-fitted, or chosen on valid
            mine, theirs = scores["%d-%d" % chosen], scores["%d-%d" % other]
            evidence = f"{ngrams['metric']} {mine:.3f} against {theirs:.3f} for {_ngrams_name(other)}"
            if chosen == ref and theirs > mine:
                evidence += WITHIN_SE
            out.append((f"word {_ngrams_name(chosen)}", evidence))
        words = fit_info.get("text_words")
        if words and not ngrams and words["median"] < words["long_from"]:
            out.append((f"word {_ngrams_name(fit_info['ngram_range'])}",
                        f"median document {words['median']:g} words, under {words['long_from']}: "
                        "unigrams alone not tried"))
        shift = fit_info.get("prior_shift_choice")
        scores = (shift or {}).get("out_of_fold") or (shift or {}).get("valid")
        # said when the shift is made, or when it scored higher but within noise
        if shift and (shift["chosen"] == "train" or scores["train"] > scores["equal"]):
            chosen, other = shift["chosen"], "equal" if shift["chosen"] == "train" else "train"
            names = {"train": "class shares of train", "equal": "equal class shares (balanced weights)"}
            evidence = f"{shift['metric']} {scores[chosen]:.3f} against {scores[other]:.3f} for {names[other]}"
            if chosen == "equal" and scores[other] > scores[chosen]:
                evidence += WITHIN_SE
            out.append((names[chosen], evidence))
        large = fit_info.get("cross_fit")
        if large and not large.get("folds"):  # too much data for the default cross-fit
            docs, most = large["documents"], large.get("max_documents")
            if most is not None and docs > most:
                why = f"{docs:,} documents in train + valid, over cross_fit_max_docs={most:,}"
            else:  # recorded since the label limit exists
                why = (f"{docs:,} documents x {large['labels']:,} labels in train + valid, over "
                       f"cross_fit_max_label_docs={large['max_label_documents']:,}")
            out.append(("no cross-fit", f"{why}: fitted on train, rule tuned on valid"))
        tuning = fit_info.get("tuning")
        if tuning and tuning.get("results") and "C" in fit_info:
            def label(result) -> str:
                return f"C={result['C']:g} with word {_ngrams_name(result['ngram_range'])}"

            chosen_label = label({"C": fit_info["C"], "ngram_range": fit_info["ngram_range"]})
            by_label = {label(r): r["score"] for r in tuning["results"]}
            others = ", ".join(f"{v:.3f} for {k}" for k, v in by_label.items() if k != chosen_label)
            out.append((chosen_label, f"{tuning['selected_by']}, {tuning['metric']} {by_label[chosen_label]:.3f}"
                                      + (f" against {others}" if others else "")))
        return out

    # -- features --------------------------------------------------------------------------------
    def _vectorizer_params(self, ngram_range: tuple[int, int], min_df: int) -> list[dict[str, Any]]:
        p = self.params
        word = dict(analyzer="word", ngram_range=tuple(ngram_range), min_df=min_df, max_df=p["max_df"],
                    sublinear_tf=p["sublinear_tf"], max_features=p["max_features"], lowercase=True,
                    **_WORD_TERMS)
        params = [word]
        if p["char_ngrams"] is not None:
            params.append(dict(analyzer="char_wb", ngram_range=tuple(p["char_ngrams"]), min_df=min_df,
                               max_df=p["max_df"], sublinear_tf=p["sublinear_tf"],
                               max_features=p["max_features"], lowercase=True))
        return params

    def _fit_transform(self, texts: Sequence[str], ngram_range: tuple[int, int]):
        """Fit the vectorisers on ``texts``; returns ``(vectorizers, features of texts)`` in one pass."""
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizers, mats = [], []
        for vp in self._vectorizer_params(ngram_range, int(self.params["min_df"])):
            vec = TfidfVectorizer(dtype=np.float64, **vp)
            try:
                mats.append(vec.fit_transform(texts))
            except ValueError:
                # min_df > 1 on a tiny training set can leave no feature at all: keep every n-gram.
                vec = TfidfVectorizer(dtype=np.float64, **{**vp, "min_df": 1})
                try:
                    mats.append(vec.fit_transform(texts))
                except ValueError as exc:
                    if "empty vocabulary" not in str(exc):  # words there, all above max_df
                        raise ConfigError(
                            f"tfidf-lr: max_df={self.params['max_df']:g} leaves no n-gram: every one is in more "
                            f"than that share of the {len(texts)} training documents; raise max_df "
                            f"(--set tfidf-lr.max_df=1 keeps them all)."
                        ) from None
                    raise DataError(
                        "tfidf-lr: the training texts contain no word of two or more letters/digits "
                        "(nor a Chinese, Japanese or Thai character); "
                        "check the text column (--text-col)."
                    ) from None
            vectorizers.append(vec)
        X = mats[0].tocsr() if len(mats) == 1 else sp.hstack(mats, format="csr")
        X.sort_indices()  # fit_transform renumbers the columns; transform's output is sorted
        return vectorizers, X

    @staticmethod
    def _transform(vectorizers, texts: Sequence[str]):
        import scipy.sparse as sp

        mats = [vec.transform(texts) for vec in vectorizers]
        return mats[0].tocsr() if len(mats) == 1 else sp.hstack(mats, format="csr")

    # -- learning --------------------------------------------------------------------------------
    def _fit_linear(self, X, Y, C: float, progress=None, task_id=None):
        """Weights ``W`` (n_features, n_labels) and intercepts ``b`` (n_labels,) for one C."""
        p = self.params
        task = "multi" if self._binary() else self.task_  # one-vs-rest: the multi-label engine
        return fit_linear(X, Y, task, self.label_names_, C=C, class_weight=p["class_weight"], tol=self._tol(),
                          max_iter=int(p["max_iter"]), seed=int(p["seed"]), progress=progress, task_id=task_id,
                          n_jobs=p["n_jobs"])

    def _scores(self, X, W, b) -> np.ndarray:
        if self._binary() and self.task_ == "single":  # one-vs-rest: class scores made a distribution
            return normalize_rows(linear_scores(X, W, b, "multi"))
        return linear_scores(X, W, b, self.task_)

    def _binary(self) -> bool:
        """Whether the linear models are binary, one per label (multi-label data, or ``multiclass="ovr"``)."""
        return self.task_ == "multi" or self.params["multiclass"] == "ovr"

    def fit(self, train, valid=None, progress=None):
        self._set_label_space(train)
        if len(train) == 0:
            raise DataError("tfidf-lr: the training part is empty; it needs at least one document.")
        p = self.params
        t0 = time.perf_counter()
        self.fit_info_: dict[str, Any] = {}
        C, ngram_range = float(p["C"]), tuple(p["ngram_range"])
        fitted = None
        if p["tune"]:
            C, ngram_range, fitted = self._tune(train, valid, progress)
        elif self._tries_unigrams(train.texts, ngram_range) and valid is not None and len(valid) > 0:
            ngram_range, fitted = self._choose_ngrams_on_valid(train, valid, C, progress)
        if fitted is None:  # not tuned, or tuned by CV (refit on all of train)
            vectorizers, X = self._fit_transform(train.texts, ngram_range)
            task_id = None
            if progress is not None and hasattr(progress, "add_task"):
                task_id = progress.add_task("tfidf-lr: fitting labels", total=len(self.label_names_))
            W, b, warnings = self._fit_linear(X, train.y, C, progress, task_id)
        else:  # tuned on valid: the winner was already fitted on train
            vectorizers, W, b, warnings = fitted
        valid_scores = None
        if valid is not None and len(valid) > 0 and self._may_shift():
            valid_scores = self._scores(self._transform(vectorizers, valid.texts), W, b)
        shares = class_shares(train.y)
        shift = self._choose_prior_shift(None if valid_scores is None else valid.y, valid_scores, shares, "valid")
        self._set_state(vectorizers, W, _shifted_intercepts(b, shares) if shift else b)
        n_docs = len(train) + (len(valid) if valid is not None else 0)
        n_labels = len(self.label_names_)
        if int(p["cross_fit"]) and not self.cross_fit_folds(self.task_, n_docs, n_labels):  # too much data
            self.fit_info_["cross_fit"] = {"folds": 0, "documents": n_docs, "labels": n_labels,
                                           "max_documents": p["cross_fit_max_docs"],
                                           "max_label_documents": p["cross_fit_max_label_docs"]}
        self.fit_info_.update({
            "C": C,
            "ngram_range": list(ngram_range),
            "prior_shift": shift,
            "n_features": int(W.shape[0]),
            "fit_seconds": round(time.perf_counter() - t0, 3),
            "warnings": warnings,
        })
        return self

    def _choose_ngrams_on_valid(self, train, valid, C: float, progress):
        """Without the cross-fit (large data, or ``cross_fit=0``): the reference n-grams and word
        unigrams alone, each fitted on train and scored on valid with its own tuned rule; unigrams
        are kept only when better by more than about one standard error, as in the cross-fit (on
        large data the choice of unigrams, not the cross-fit, was the gain: docs/benchmarks.md,
        "Larger data"). Returns ``(ngram_range, (vectorizers, W, b, warnings))`` of the chosen one."""
        candidates = (tuple(self.params["ngram_range"]), (1, 1))
        task_id = None
        if progress is not None and hasattr(progress, "add_task"):
            task_id = progress.add_task("tfidf-lr: word n-grams, fitted on train, chosen on valid",
                                        total=len(candidates) * len(self.label_names_))
        fits, valid_scores = [], []
        for ngrams in candidates:
            vectorizers, X = self._fit_transform(train.texts, ngrams)
            W, b, warnings = self._fit_linear(X, train.y, C, progress, task_id)
            valid_scores.append(self._scores(self._transform(vectorizers, valid.texts), W, b))
            fits.append((vectorizers, W, b, warnings))
        best = self._choose_ngrams(candidates, valid.y, valid_scores, "valid")
        return candidates[best], fits[best]

    def _choose_ngrams(self, candidates, y, scores: list[np.ndarray], where: str) -> int:
        """Index of the word n-gram range kept among ``candidates`` (the reference first), from each
        one's scores of the documents ``y`` (``where``: "out-of-fold" or "valid") under its own tuned
        rule: another replaces the reference only when better by more than about one standard error
        (:func:`nlpkit.metrics.choose_over_reference`). Recorded in ``fit_info_["ngram_choice"]``."""
        from nlpkit.metrics import choose_over_reference, decide, get_metric, headline_metric, tune_rule

        preds = [decide(s, tune_rule(y, s, task=self.task_)) for s in scores]
        metric = headline_metric(self.task_)
        best, intervals = choose_over_reference(y, preds, metric, seed=int(self.params["seed"]))
        self.fit_info_["ngram_choice"] = {
            "metric": f"{where} {metric}", "reference": list(candidates[0]),
            where.replace("-", "_"): {f"{lo}-{hi}": round(get_metric(metric)(y, pred), 6)
                                      for (lo, hi), pred in zip(candidates, preds)},
            "difference_interval_68": {"%d-%d" % candidates[1]: [round(v, 6) for v in intervals[1]]},
            "chosen": list(candidates[best]),
        }
        return best

    def _tries_unigrams(self, texts: Sequence[str], ngram_range: tuple[int, int]) -> bool:
        """Whether word unigrams alone compete with ``ngram_range`` (``choose_ngrams``); for "auto",
        records the median length of ``texts`` in ``fit_info_["text_words"]``."""
        setting = self.params["choose_ngrams"]
        if ngram_range == (1, 1) or setting is False:
            return False
        if setting is True:
            return True
        median = float(np.median([len(t.split()) for t in texts])) if len(texts) else 0.0
        self.fit_info_["text_words"] = {"median": median, "long_from": LONG_TEXT_WORDS}
        return median >= LONG_TEXT_WORDS

    def _may_shift(self) -> bool:
        """Whether ``prior_shift`` applies: single-label data, one multinomial model, balanced weights."""
        return self.task_ == "single" and self.params["class_weight"] == "balanced" and not self._binary()

    def _choose_prior_shift(self, y, scores, shares, where: str) -> bool:
        """Whether the fitted logits get the log class shares of train (``prior_shift``): as set, or
        for "auto" when the shifted ``scores`` of the held-out documents ``y`` (rows of ``shares``:
        the class shares of the documents each score's model was fitted on) beat the unshifted ones
        by more than about one standard error. Recorded in ``fit_info_["prior_shift_choice"]``."""
        from nlpkit.metrics import choose_over_reference, get_metric

        setting = self.params["prior_shift"]
        if not self._may_shift():
            return False
        if setting != "auto":
            return bool(setting)
        if y is None:  # nothing held out to choose on
            return False
        preds = [_one_hot_argmax(s) for s in (scores, _shifted_scores(scores, shares))]
        best, intervals = choose_over_reference(y, preds, "accuracy", seed=int(self.params["seed"]))
        self.fit_info_["prior_shift_choice"] = {
            "metric": f"{where} accuracy",
            where.replace("-", "_"): {name: round(get_metric("accuracy")(y, pred), 6)
                                      for name, pred in zip(("equal", "train"), preds)},
            "difference_interval_68": [round(v, 6) for v in intervals[1]],
            "chosen": "train" if best else "equal",
        }
        return best == 1

    def _set_state(self, vectorizers, W, b) -> None:
        self.vectorizers_ = vectorizers
        # Coefficients are kept as float32 in memory and on disk alike, so a saved model scores
        # exactly as the fitted one.
        self.coef_ = compact_coefficients(W)
        self.intercept_ = b.astype(np.float64)

    def _tune(self, train, valid, progress):
        """Choose ``(C, ngram_range)``: a C grid at the default n-grams, then the other n-gram range
        (unigrams, or 1-2 if the default is unigrams) at the best C: ``len(grid_C) + 1`` fits.

        Returns ``(C, ngram_range, fitted)``; ``fitted`` is ``(vectorizers, W, b, warnings)`` of the
        winner when chosen on the validation part (no refit needed), None after cross-validation.
        """
        p = self.params
        cv = int(p["cv"])
        if cv == 0 and (valid is None or len(valid) == 0):
            cv = 3
        base_ngrams = tuple(p["ngram_range"])
        task_id = None
        if progress is not None and hasattr(progress, "add_task"):
            task_id = progress.add_task(f"tfidf-lr: tuning ({'%d-fold CV' % cv if cv else 'valid'})",
                                        total=len(p["grid_C"]) + 1)
        results: list[dict[str, Any]] = []
        features: dict[tuple[int, int], tuple] = {}
        fitted: dict[tuple[float, tuple[int, int]], tuple] = {}

        def score(C: float, ngrams: tuple[int, int]) -> float:
            if cv:
                value = self._cv_score(train, C, ngrams, cv)
            else:
                if ngrams not in features:  # one vectoriser per n-gram range, reused across C
                    vecs, X = self._fit_transform(train.texts, ngrams)
                    features[ngrams] = (vecs, X, self._transform(vecs, valid.texts))
                vecs, X, Xv = features[ngrams]
                W, b, warnings = self._fit_linear(X, train.y, C)
                value = _selection_score(valid.y, self._scores(Xv, W, b), self.task_)
                # keep only the best fit so far (weights are n_features x n_labels)
                if not fitted or value > max(r["score"] for r in results):
                    fitted.clear()
                    fitted[(C, ngrams)] = (vecs, W, b, warnings)
            results.append({"C": C, "ngram_range": list(ngrams), "score": value})
            if task_id is not None:
                progress.update(task_id, advance=1)
            return value

        by_c = {float(C): score(float(C), base_ngrams) for C in p["grid_C"]}
        # ties go to the C closest to the default
        best_c = max(by_c, key=lambda c: (by_c[c], -abs(np.log(c / float(p["C"])))))
        options = {base_ngrams: by_c[best_c]}
        alt = (1, 1) if base_ngrams != (1, 1) else (1, 2)
        options[alt] = score(best_c, alt)
        best_ngrams = max(options, key=lambda ng: (options[ng], ng == base_ngrams))
        self.fit_info_["tuning"] = {
            "selected_by": f"{cv}-fold CV on train" if cv else "validation part",
            "metric": _SELECTION_METRIC[self.task_],
            "results": results,
        }
        return best_c, best_ngrams, fitted.get((best_c, best_ngrams))

    def _cv_score(self, train, C, ngrams, k) -> float:
        from sklearn.model_selection import KFold

        if len(train) < k:
            raise ConfigError(f"tfidf-lr: --cv {k} needs at least {k} training documents; train has {len(train)}.")
        # The vectoriser is fitted on all of train once (vocabulary/idf see every fold; no labels are used).
        X = self._fit_transform(train.texts, ngrams)[1]
        folds = KFold(n_splits=k, shuffle=True, random_state=int(self.params["seed"]))
        values = []
        for fit_idx, held_idx in folds.split(np.arange(len(train))):
            W, b, _ = self._fit_linear(X[fit_idx], train.y[fit_idx], C)
            values.append(_selection_score(train.y[held_idx], self._scores(X[held_idx], W, b), self.task_))
        return float(np.mean(values))

    # -- cross-fitting (multi-label) -----------------------------------------------------------------
    def cross_fit_folds(self, task: str, n_docs: int, n_labels: int | None = None) -> int:
        """``cv`` folds when tuning by cross-validation, else ``cross_fit`` (0 = off), or 0 when
        ``n_docs`` (train + valid) is over ``cross_fit_max_docs`` or, on multi-label data, ``n_docs``
        x ``n_labels`` over ``cross_fit_max_label_docs``.

        Multi-label: the threshold is tuned on the out-of-fold scores of train + valid. Single-label
        (argmax, nothing to tune by default): the refit on train + valid, 11 % more training data,
        is the gain (docs/benchmarks.md, "Evidence behind the defaults").
        """
        p = self.params
        if not int(p["cross_fit"]):
            return 0
        if p["tune"] and int(p["cv"]):  # asked for by name: whatever the size
            return int(p["cv"])
        limit, label_limit = p["cross_fit_max_docs"], p["cross_fit_max_label_docs"]
        if limit is not None and n_docs > int(limit):
            return 0
        if task == "multi" and n_labels is not None and label_limit is not None and n_docs * n_labels > int(label_limit):
            return 0
        return int(p["cross_fit"])

    def cross_fit(self, data, fold_of: np.ndarray, progress=None) -> np.ndarray:
        """Out-of-fold scores of ``data`` for the decision rule, then the final fit on all of it.

        The vectoriser is fitted once on all of ``data`` (vocabulary and idf use no label), so
        each fold only refits the linear models. With ``choose_ngrams`` (the default), word unigrams
        alone get their out-of-fold scores too and replace ``ngram_range`` only when clearly better
        (:func:`nlpkit.metrics.choose_over_reference`). With ``tune``, every candidate of the grid (see
        :meth:`_tune`) gets its out-of-fold scores and the winner is the one whose scores reach the
        best micro-F1 under one tuned global threshold, the rule ``auto`` keeps unless another is clearly better.
        """
        from nlpkit.metrics.rules import best_global_threshold

        self._set_label_space(data)
        if len(data) == 0:
            raise DataError("tfidf-lr: the training part is empty; it needs at least one document.")
        p = self.params
        t0 = time.perf_counter()
        self.fit_info_ = {}
        k = int(fold_of.max()) + 1
        held = [np.flatnonzero(fold_of == f) for f in range(k)]
        fold_tasks = [(np.flatnonzero(fold_of != f), held[f]) for f in range(k)]
        y = data.y
        at_least_one = bool(np.asarray(y.sum(axis=1)).ravel().all())
        features: dict[tuple[int, int], tuple] = {}
        task_id = None
        if progress is not None and hasattr(progress, "add_task"):
            task_id = progress.add_task(f"tfidf-lr: {k}-fold cross-fit", total=None)

        def feats(ngrams):
            if ngrams not in features:
                features[ngrams] = self._fit_transform(data.texts, ngrams)
            return features[ngrams]

        final_warnings: list[str] = []

        def fit_tasks(X, tasks, C):
            """For each ``(fit_rows, held_rows)``: the held rows' scores of a model fitted on the fit
            rows, or ``(W, b)`` fitted on every row for ``(None, None)``."""
            if self._binary():  # per-label binary models, in worker processes
                results = binary_tasks(X, y, tasks, n_jobs=p["n_jobs"], **self._fit_args(C))
                if self.task_ == "single":  # one-vs-rest: held rows' class scores made distributions
                    results = [r if fit_rows is None else normalize_rows(r) for (fit_rows, _), r in zip(tasks, results)]
                return results
            out = []  # one multinomial model per task, the tasks in worker processes
            for (fit_rows, _held), (W, b, warnings) in zip(tasks, multinomial_tasks(
                    X, y, tasks, self.label_names_, n_jobs=p["n_jobs"], **self._fit_args(C))):
                if fit_rows is None:
                    final_warnings[:] = warnings
                    out.append((W, b))
                else:
                    out.append(W)  # the held rows' scores
            return out

        def run(C, ngrams, final: bool):
            """Out-of-fold scores for (C, ngrams), plus the final fit when ``final``."""
            vecs, X = feats(ngrams)
            results = fit_tasks(X, fold_tasks + ([(None, None)] if final else []), C)
            oof = np.zeros((len(data), y.shape[1]))
            for f in range(k):
                oof[held[f]] = results[f]
            return oof, (vecs, *results[k]) if final else None

        y_bool = y.toarray().astype(bool)
        score_name = "out_of_fold_micro_f1" if self.task_ == "multi" else "out_of_fold_accuracy"
        y_true = np.asarray(y.argmax(axis=1)).ravel()

        def score(oof) -> float:
            if self.task_ == "multi":
                return best_global_threshold(y_bool, oof, at_least_one)[1]
            return _selection_score(y, oof, "single")  # accuracy, log-loss tie-break

        C, ngram_range = float(p["C"]), tuple(p["ngram_range"])
        if not p["tune"] and self._tries_unigrams(data.texts, ngram_range):
            # word unigrams alone against the reference n-grams, both out-of-fold; the final fit is
            # the chosen one's
            candidates = (ngram_range, (1, 1))
            oofs = [run(C, ng, final=False)[0] for ng in candidates]
            best = self._choose_ngrams(candidates, y, oofs, "out-of-fold")
            ngram_range, oof = candidates[best], oofs[best]
            vecs, X = feats(ngram_range)
            fitted = (vecs, *fit_tasks(X, [(None, None)], C)[0])
        elif not p["tune"]:
            oof, fitted = run(C, ngram_range, final=True)
        else:
            results: list[dict[str, Any]] = []
            by_candidate: dict[tuple[float, tuple[int, int]], tuple] = {}
            for c in p["grid_C"]:
                oof = run(float(c), ngram_range, final=False)[0]
                by_candidate[(float(c), ngram_range)] = (score(oof), oof)
            # ties go to the C closest to the default
            C = max((c for c, _ in by_candidate), key=lambda c: (by_candidate[(c, ngram_range)][0],
                                                                  -abs(np.log(c / float(p["C"])))))
            alt = (1, 1) if ngram_range != (1, 1) else (1, 2)
            oof = run(C, alt, final=False)[0]
            by_candidate[(C, alt)] = (score(oof), oof)
            if by_candidate[(C, alt)][0] > by_candidate[(C, ngram_range)][0]:
                ngram_range = alt
            for (c, ng), (value, _) in by_candidate.items():
                results.append({"C": c, "ngram_range": list(ng), "score": value})
            self.fit_info_["tuning"] = {"selected_by": f"{k}-fold cross-fit on train + valid",
                                        "metric": ("out-of-fold micro-F1 at one tuned global threshold"
                                                   if self.task_ == "multi" else "out-of-fold accuracy"),
                                        "results": results}
            oof = by_candidate[(C, ngram_range)][1]
            vecs, X = feats(ngram_range)
            fitted = (vecs, *fit_tasks(X, [(None, None)], C)[0])
        vecs, W, b = fitted
        fold_shares = np.zeros_like(oof)
        for f in range(k):
            fold_shares[held[f]] = class_shares(y, fold_tasks[f][0])
        shift = self._choose_prior_shift(y, oof, fold_shares, "out-of-fold")
        if shift:
            oof, b = _shifted_scores(oof, fold_shares), _shifted_intercepts(b, class_shares(y))
        self._set_state(vecs, W, b)
        if task_id is not None:
            progress.update(task_id, total=1, completed=1)
        self.fit_info_.update({
            "C": C,
            "ngram_range": list(ngram_range),
            "prior_shift": shift,
            "n_features": int(W.shape[0]),
            "cross_fit": {"folds": k, "documents": len(data), score_name: round(
                score(oof) if self.task_ == "multi" else float((oof.argmax(axis=1) == y_true).mean()), 6)},
            "fit_seconds": round(time.perf_counter() - t0, 3),
            "warnings": final_warnings,
        })
        return oof

    def _fit_args(self, C: float) -> dict[str, Any]:
        p = self.params
        return {"C": C, "class_weight": p["class_weight"], "tol": self._tol(), "max_iter": int(p["max_iter"]),
                "seed": int(p["seed"])}

    def _tol(self) -> float:
        tol = self.params["tol"]
        if tol is None:
            return 0.1 if self._binary() else 1e-4
        return float(tol)

    # -- inference -------------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, len(self.label_names_)))
        X = self._transform(self.vectorizers_, texts)
        return self._scores(X, self.coef_, self.intercept_)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path = self._prepare_dir(path)
        vocab_state = []
        arrays: dict[str, np.ndarray] = {}
        for i, vec in enumerate(self.vectorizers_):
            terms = [None] * len(vec.vocabulary_)
            for term, idx in vec.vocabulary_.items():
                terms[idx] = term
            vocab_state.append({"params": _vectorizer_json(vec), "terms": terms})
            arrays[f"idf_{i}"] = np.asarray(vec.idf_, dtype=np.float64)
        if isinstance(self.coef_, np.ndarray):
            arrays["coef"] = self.coef_
        else:
            coef = self.coef_.tocsr()
            arrays.update(coef_data=coef.data, coef_indices=coef.indices, coef_indptr=coef.indptr,
                          coef_shape=np.asarray(coef.shape, dtype=np.int64))
        arrays["intercept"] = self.intercept_
        with open(path / VOCAB_JSON, "w", encoding="utf-8", newline="\n") as fh:
            json.dump({"vectorizers": vocab_state}, fh, ensure_ascii=False)
        np.savez_compressed(path / ARRAYS_NPZ, **arrays)
        self._write_model_json(path, fit_info=self.fit_info())

    @classmethod
    def load(cls, path: Path):
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import TfidfVectorizer

        model, _meta = cls._from_model_json(path)
        path = Path(path)
        with cls._reading_state(path / VOCAB_JSON):
            with open(path / VOCAB_JSON, encoding="utf-8") as fh:
                state = json.load(fh)
        with cls._reading_state(path / ARRAYS_NPZ):
            with np.load(path / ARRAYS_NPZ, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        with cls._reading_state(path, TypeError):  # a key or an array missing from either file
            vectorizers = []
            for i, vs in enumerate(state["vectorizers"]):
                params = dict(vs["params"])
                params["ngram_range"] = tuple(params["ngram_range"])
                if params.pop("tokens", None) == "unicode":
                    params.update(_WORD_TERMS)
                vocab = {term: idx for idx, term in enumerate(vs["terms"])}
                vec = TfidfVectorizer(dtype=np.float64, vocabulary=vocab, **params)
                vec.idf_ = arrays[f"idf_{i}"]
                vectorizers.append(vec)
            if "coef" in arrays:  # dense; older nlpkit saved every model's coefficients sparse
                coef = arrays["coef"]
            else:
                shape = tuple(int(s) for s in arrays["coef_shape"])
                coef = sp.csr_matrix((arrays["coef_data"], arrays["coef_indices"], arrays["coef_indptr"]), shape=shape)
            intercept = arrays["intercept"]
        if coef.ndim != 2 or coef.shape[1] != len(model.label_names_) or intercept.shape != (len(model.label_names_),):
            raise NlpkitError(f"{path / ARRAYS_NPZ} does not match the {len(model.label_names_)} labels of "
                              f"{path / 'nlpkit_model.json'}; re-run the experiment.")
        n_terms = sum(len(vec.vocabulary) for vec in vectorizers)
        if coef.shape[0] != n_terms:
            raise NlpkitError(f"{path / ARRAYS_NPZ} has coefficients for {coef.shape[0]:,} terms but {path / VOCAB_JSON} "
                              f"holds {n_terms:,}; re-run the experiment.")
        model.vectorizers_ = vectorizers
        model.coef_ = coef
        model.intercept_ = intercept
        return model


# choose_ngrams="auto" tries word unigrams alone when the median training document has at least
# this many words (split on white space): out of fold they led on every set with a median of 60 words
# or more (Reuters, R8, R52, Hallmarks of Cancer, the 300,000 synthetic documents; BBC News level) and
# trailed on every set with 37 or fewer (AG News, TREC, SST-2, cooking tags): docs/benchmarks.md.
LONG_TEXT_WORDS = 50

_VECTORIZER_KEYS = ("analyzer", "ngram_range", "min_df", "max_df", "sublinear_tf", "max_features", "lowercase")
# Word terms come from nlpkit.text.tfidf_terms: scikit-learn's default token pattern, plus
# combining marks inside words and one term per character of scripts written without spaces
# (Chinese, Japanese, Thai...). Saved as "tokens": "unicode"; a vectoriser saved without that key
# (before it existed) is rebuilt with scikit-learn's default pattern, as it was fitted.
_WORD_TERMS = {"tokenizer": tfidf_terms, "token_pattern": None}
_SELECTION_METRIC = {"multi": "micro average precision", "single": "accuracy, then log loss"}


def class_shares(y, rows=None) -> np.ndarray:
    """Each class's share of the documents ``rows`` (default: all) of the label matrix ``y``."""
    counts = np.asarray((y if rows is None else y[rows]).sum(axis=0), dtype=np.float64).ravel()
    return counts / max(counts.sum(), 1.0)


def _shifted_scores(scores: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """softmax(z + log shares) from the scores softmax(z), row by row (shares broadcast)."""
    out = scores * shares
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.array(scores, dtype=np.float64), where=total > 0)


def _shifted_intercepts(b: np.ndarray, shares: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):  # a class absent from train: its intercept is -inf already
        return b + np.log(shares)


def _one_hot_argmax(scores: np.ndarray) -> np.ndarray:
    return np.eye(scores.shape[1], dtype=np.uint8)[scores.argmax(axis=1)]


def _ngrams_name(rng) -> str:
    lo, hi = rng
    return "unigrams" if (lo, hi) == (1, 1) else f"{lo}-{hi}-grams"


def _vectorizer_json(vec) -> dict[str, Any]:
    params = vec.get_params()
    out = {k: params[k] for k in _VECTORIZER_KEYS}
    out["ngram_range"] = list(out["ngram_range"])
    if params["tokenizer"] is tfidf_terms:
        out["tokens"] = "unicode"
    # min_df / max_df / max_features only matter when fitting; the vocabulary is fixed on load.
    for key in ("min_df", "max_df", "max_features"):
        out.pop(key)
    return out


def _selection_score(y_true, scores: np.ndarray, task: str) -> float:
    """Threshold-free quality on held-out data, used to compare hyper-parameters.

    Multi-label: micro-averaged average precision (depends on the ranking of all (doc, label)
    scores, not on a threshold, which the metrics layer tunes later). Single-label: accuracy, with
    a small log-loss tie-break.
    """
    from sklearn.metrics import average_precision_score

    y = np.asarray(y_true.toarray() if hasattr(y_true, "toarray") else y_true)
    if task == "multi":
        if y.sum() == 0:
            return 0.0
        return float(average_precision_score(y.ravel(), scores.ravel()))
    truth = y.argmax(axis=1)
    acc = float((scores.argmax(axis=1) == truth).mean())
    p = np.clip(scores[np.arange(len(truth)), truth], 1e-12, 1.0)
    return acc - 1e-3 * float(-np.log(p).mean())


def compact_coefficients(W: np.ndarray):
    """``W`` (features x labels) as kept and saved: float32, dense when at least half its entries
    are non-zero, else sparse (CSR).

    L2-regularised logistic regression gives nearly every feature a weight for every label, so the
    coefficients are dense in practice: 4 bytes an entry, where CSR takes 8 (value and column).
    Sparse coefficients come from labels absent from train (a column of zeros) when most labels are.
    """
    dense = np.asarray(W, dtype=np.float32)
    if 2 * np.count_nonzero(dense) >= dense.size:
        return dense
    del dense
    return csr_from_dense(W, np.float32)


def csr_from_dense(W: np.ndarray, dtype=np.float32, block_rows: int = 1 << 16):
    """``scipy.sparse.csr_matrix(W.astype(dtype))``, the same arrays, without its temporaries.

    scipy converts a dense matrix through int64 coordinates of every non-zero entry, several times
    the output's memory at its peak; this counts, then fills, the CSR arrays a block of rows at a
    time (peaks in docs/benchmarks.md, "Larger data").
    """
    import scipy.sparse as sp

    n_rows, n_cols = W.shape
    starts = range(0, n_rows, block_rows)
    counts = np.zeros(n_rows, dtype=np.int64)
    for i in starts:  # after the cast, as scipy counts them: a float64 too small for float32 is a zero
        counts[i:i + block_rows] = np.count_nonzero(W[i:i + block_rows].astype(dtype), axis=1)
    nnz = int(counts.sum())
    index_dtype = np.int32 if max(nnz, n_rows, n_cols) < 2**31 else np.int64  # as scipy chooses
    indptr = np.zeros(n_rows + 1, dtype=index_dtype)
    np.cumsum(counts, out=indptr[1:])
    data = np.empty(nnz, dtype=dtype)
    indices = np.empty(nnz, dtype=index_dtype)
    for i in starts:
        block = W[i:i + block_rows].astype(dtype)
        rows, cols = np.nonzero(block)
        lo, hi = indptr[i], indptr[min(i + block_rows, n_rows)]
        data[lo:hi] = block[rows, cols]
        indices[lo:hi] = cols
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols))

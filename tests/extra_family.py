"""A model family that exists only in the tests: nearest centroid over bag-of-words vectors.

It is what a new family must be and nothing more: this file, plus one registry line in the test
that uses it (``monkeypatch.setitem(nlpkit.models.REGISTRY, FAMILY, IMPORT_PATH)``). With that
alone, ``nlpkit baseline`` trains it and prints its choice, runs it on every fold of a k-fold split,
and ``nlpkit report`` compares it (tests/test_extra_family.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from nlpkit.models.base import Classifier, normalize_rows, one_of

FAMILY = "centroid"
IMPORT_PATH = "extra_family:NearestCentroidClassifier"
WEIGHTINGS = ("counts", "binary")
CENTROIDS_NPZ = "centroids.npz"
VOCAB_JSON = "centroid_vocabulary.json"
_TOKEN = re.compile(r"\w+")


class NearestCentroidClassifier(Classifier):
    """Score of a label = cosine similarity between a document and the mean of that label's training
    documents (unit-length word-count vectors). ``weighting="auto"`` fits word counts and binary
    (present / absent) words, and keeps binary words only when better on valid."""

    family = FAMILY
    param_defaults = {"weighting": "auto"}
    param_checks = {"weighting": one_of("auto", *WEIGHTINGS)}

    @classmethod
    def describe_choices(cls, fit_info):
        choice = fit_info.get("weighting_choice")
        if not choice:
            return []
        chosen, valid = choice["chosen"], choice["valid"]
        other = next(w for w in WEIGHTINGS if w != chosen)
        return [(f"{chosen} word weights",
                 f"valid {choice['metric']} {valid[chosen]:.3f} against {valid[other]:.3f} for {other}")]

    def fit(self, train, valid=None, progress=None):
        self._set_label_space(train)
        self.vocabulary_ = sorted({tok for text in train.texts for tok in _tokens(text)})
        weighting = self.params["weighting"]
        self.fit_info_ = {}
        if weighting == "auto" and valid is not None and len(valid) > 0:
            hits = {}
            for option in WEIGHTINGS:
                self._fit_centroids(train, option)
                hits[option] = round(_top1_hit_rate(self.predict_proba(valid.texts), valid.y), 6)
            weighting = "binary" if hits["binary"] > hits["counts"] else "counts"  # counts on a tie
            self.fit_info_["weighting_choice"] = {"metric": "top-1 hit rate", "valid": hits, "chosen": weighting}
        elif weighting == "auto":
            weighting = "counts"
        self._fit_centroids(train, weighting)
        self.fit_info_["weighting"] = weighting
        return self

    def _fit_centroids(self, train, weighting: str) -> None:
        self.weighting_ = weighting
        X = self._vectors(train.texts)
        y = train.y.toarray().astype(np.float64)
        sums = y.T @ X
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        self.centroids_ = np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0)  # no document: 0

    def _vectors(self, texts) -> np.ndarray:
        index = {tok: j for j, tok in enumerate(self.vocabulary_)}
        X = np.zeros((len(texts), len(index)))
        for i, text in enumerate(texts):
            for tok in _tokens(text):
                if tok in index:
                    X[i, index[tok]] = 1.0 if self.weighting_ == "binary" else X[i, index[tok]] + 1.0
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)

    def predict_proba(self, texts):
        self._check_fitted()
        scores = np.clip(self._vectors(list(texts)) @ self.centroids_.T, 0.0, 1.0)
        return normalize_rows(scores) if self.task_ == "single" else scores

    def save(self, path):
        path = self._prepare_dir(path)
        np.savez(Path(path) / CENTROIDS_NPZ, centroids=self.centroids_)
        (Path(path) / VOCAB_JSON).write_text(json.dumps({"vocabulary": self.vocabulary_, "weighting": self.weighting_}),
                                             encoding="utf-8")
        self._write_model_json(path, fit_info=self.fit_info())

    @classmethod
    def load(cls, path):
        model, _meta = cls._from_model_json(path)
        with cls._reading_state(Path(path)):
            state = json.loads((Path(path) / VOCAB_JSON).read_text(encoding="utf-8"))
            with np.load(Path(path) / CENTROIDS_NPZ, allow_pickle=False) as npz:
                model.centroids_ = npz["centroids"]
        model.vocabulary_, model.weighting_ = state["vocabulary"], state["weighting"]
        return model


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(str(text).lower())


def _top1_hit_rate(scores: np.ndarray, y) -> float:
    """Share of documents whose best-scored label is one of theirs."""
    if len(scores) == 0:
        return 0.0
    best = scores.argmax(axis=1)
    return float(np.asarray(y.toarray())[np.arange(len(best)), best].mean())

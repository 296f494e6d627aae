"""The floor every model must beat: scores are the training-set label priors.

Single-label: each document gets the class distribution of train, so argmax is the majority class.
Multi-label: each label gets its train frequency. A label never seen in train scores 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from nlpkit.errors import NlpkitError
from nlpkit.models.base import Classifier

SCORES_JSON = "majority.json"


class MajorityClassifier(Classifier):
    """Constant scores from the label distribution of the training set (no parameters)."""

    family = "majority"

    def fit(self, train, valid=None, progress=None):
        self._set_label_space(train)
        counts = np.asarray(train.y.sum(axis=0), dtype=np.float64).ravel()
        n_docs = train.y.shape[0]
        if self.task_ == "single":
            total = counts.sum()
            # no training document at all: nothing to prefer, so uniform
            prior = counts / total if total > 0 else np.full(len(counts), 1.0 / max(len(counts), 1))
        else:
            prior = counts / n_docs if n_docs > 0 else np.zeros(len(counts))
        self.prior_ = prior
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        return np.tile(self.prior_, (len(texts), 1))

    def save(self, path: Path) -> None:
        path = self._prepare_dir(path)
        with open(path / SCORES_JSON, "w", encoding="utf-8") as fh:
            json.dump({"prior": [float(p) for p in self.prior_]}, fh)
        self._write_model_json(path)

    @classmethod
    def load(cls, path: Path):
        model, meta = cls._from_model_json(path)
        try:
            with open(Path(path) / SCORES_JSON, encoding="utf-8") as fh:
                prior = np.asarray(json.load(fh)["prior"], dtype=np.float64)
        except (OSError, ValueError, KeyError) as exc:
            raise NlpkitError(f"cannot read {Path(path) / SCORES_JSON}: {exc}. Re-run the experiment.") from None
        if prior.shape != (len(model.label_names_),):
            raise NlpkitError(f"{Path(path) / SCORES_JSON} has {prior.shape[0]} scores for {len(model.label_names_)} labels.")
        model.prior_ = prior
        return model

    def fit_info(self) -> dict:
        self._check_fitted()
        return {"majority_label": self.label_names_[int(np.argmax(self.prior_))] if len(self.prior_) else None}

"""A small keyword-count classifier that really implements the Classifier contract.

It trains in milliseconds, so the registry, the experiment, ``predict`` and reports can be
exercised without a real model. Not registered in nlpkit; tests add it to REGISTRY themselves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from nlpkit.models.base import Classifier, normalize_rows

FAMILY = "fake-keyword"
IMPORT_PATH = "fake_model:KeywordClassifier"
_TOKEN = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class KeywordClassifier(Classifier):
    """Score of a label = share of a document's tokens seen in that label's training documents."""

    family = FAMILY
    param_defaults = {"min_count": 1}

    def fit(self, train, valid=None, progress=None):
        self._set_label_space(train)
        y = train.y.tocsc()
        vocab: list[dict[str, int]] = []
        for j in range(len(self.label_names_)):
            counts: dict[str, int] = {}
            for i in y[:, j].nonzero()[0]:
                for tok in set(tokens(train.texts[i])):
                    counts[tok] = counts.get(tok, 0) + 1
            vocab.append({t: c for t, c in counts.items() if c >= self.params["min_count"]})
        self.vocab_ = vocab
        return self

    def predict_proba(self, texts):
        self._check_fitted()
        scores = np.zeros((len(texts), len(self.label_names_)))
        for i, text in enumerate(texts):
            toks = set(tokens(text))
            if not toks:
                continue
            for j, counts in enumerate(self.vocab_):
                scores[i, j] = sum(1 for t in toks if t in counts) / len(toks)
        if self.task_ == "single":
            return normalize_rows(scores)
        return scores

    def save(self, path):
        path = self._prepare_dir(path)
        (Path(path) / "vocab.json").write_text(json.dumps(self.vocab_), encoding="utf-8")
        self._write_model_json(path)

    @classmethod
    def load(cls, path):
        model, _meta = cls._from_model_json(path)
        model.vocab_ = json.loads((Path(path) / "vocab.json").read_text(encoding="utf-8"))
        return model

    def fit_info(self):
        return {"vocab_sizes": [len(v) for v in self.vocab_]}

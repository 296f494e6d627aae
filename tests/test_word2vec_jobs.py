"""word2vec's per-label logistic regressions in worker processes (``n_jobs``): the same weights."""

from __future__ import annotations

import numpy as np

from conftest import REPO
from nlpkit.data import read_dataset
from nlpkit.models.word2vec import Word2VecClassifier


def test_word2vec_multi_label_models_are_the_same_in_worker_processes(monkeypatch):
    from nlpkit.models import liblinear

    data = read_dataset(REPO / "data" / "reuters_sample.jsonl")
    train, valid = data.subset(np.arange(300)), data.subset(np.arange(300, 400))
    monkeypatch.setattr(liblinear, "_PARALLEL_MIN_WORK", 0)  # small data would otherwise stay in-process
    one = Word2VecClassifier(n_jobs=1, epochs=2, vector_size=20).fit(train, valid)
    two = Word2VecClassifier(n_jobs=2, epochs=2, vector_size=20).fit(train, valid)
    np.testing.assert_array_equal(one.coef_, two.coef_)
    np.testing.assert_array_equal(one.predict_proba(valid.texts), two.predict_proba(valid.texts))

"""tfidf-lr's cost budgets: word unigrams tried on long texts only (``choose_ngrams="auto"``), and no
cross-fit when documents x labels is large (``cross_fit_max_label_docs``)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_dataset
from nlpkit.errors import ConfigError
from nlpkit.models.tfidf_lr import LONG_TEXT_WORDS, TfidfLogisticRegression
from nlpkit.split import kfold


def _texts(words_per_doc: int, n: int = 90, seed: int = 0):
    rng = np.random.default_rng(seed)
    topics = {"fruit": ["apple", "banana", "cherry", "pear"], "motor": ["engine", "piston", "valve", "oil"],
              "sport": ["goal", "match", "referee", "league"]}
    common = [f"filler{i}" for i in range(40)]
    texts, labels = [], []
    for i in range(n):
        label = list(topics)[i % 3]
        words = list(rng.choice(common, size=words_per_doc - 2)) + list(rng.choice(topics[label], size=2))
        texts.append(" ".join(words))
        labels.append(label)
    return make_dataset(texts, labels)


@pytest.mark.parametrize("words, tried", [(LONG_TEXT_WORDS - 1, False), (LONG_TEXT_WORDS, True)])
def test_unigrams_alone_are_tried_on_long_texts_only(words, tried):
    data = _texts(words)
    model = TfidfLogisticRegression(n_jobs=1)
    model.cross_fit(data, kfold(data.y, 3, seed=0))
    info = model.fit_info()
    assert info["text_words"] == {"median": float(words), "long_from": LONG_TEXT_WORDS}
    assert ("ngram_choice" in info) is tried
    described = dict(TfidfLogisticRegression.describe_choices(info))
    if not tried:
        assert info["ngram_range"] == [1, 2]
        assert described["word 1-2-grams"] == (f"median document {words} words, under {LONG_TEXT_WORDS}: "
                                              "unigrams alone not tried")
    # asked for by name, they are tried whatever the length; never, never
    forced = TfidfLogisticRegression(n_jobs=1, choose_ngrams=True)
    forced.cross_fit(data, kfold(data.y, 3, seed=0))
    assert "ngram_choice" in forced.fit_info() and "text_words" not in forced.fit_info()
    off = TfidfLogisticRegression(n_jobs=1, choose_ngrams=False)
    off.cross_fit(data, kfold(data.y, 3, seed=0))
    assert "ngram_choice" not in off.fit_info()


def test_without_cross_fit_short_texts_keep_the_reference_ngrams():
    data = _texts(10, n=120)
    train, valid = data.subset(np.arange(120) < 90), data.subset(np.arange(120) >= 90)
    model = TfidfLogisticRegression(n_jobs=1, cross_fit=0).fit(train, valid)
    assert "ngram_choice" not in model.fit_info() and model.fit_info()["text_words"]["median"] == 10.0
    assert [v.ngram_range for v in model.vectorizers_] == [(1, 2)]


def test_cross_fit_stops_at_the_label_document_limit():
    model = TfidfLogisticRegression()
    assert model.cross_fit_folds("multi", 10_000, 200) == 3  # 2,000,000: at the limit
    assert model.cross_fit_folds("multi", 10_000, 201) == 0
    assert model.cross_fit_folds("multi", 10_000) == 3  # labels not known yet
    assert model.cross_fit_folds("single", 10_000, 201) == 3  # one multinomial model, not one per label
    assert TfidfLogisticRegression(cross_fit_max_label_docs=None).cross_fit_folds("multi", 10_000, 10_000) == 3
    with pytest.raises(ConfigError, match="cross_fit_max_label_docs must be"):
        TfidfLogisticRegression(cross_fit_max_label_docs=0)
    with pytest.raises(ConfigError, match="choose_ngrams must be one of 'auto', True, False"):
        TfidfLogisticRegression(choose_ngrams="sometimes")

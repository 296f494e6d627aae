"""tfidf-lr's one-vs-rest option for single-label data (``multiclass="ovr"``)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO
from nlpkit.data import read_dataset
from nlpkit.errors import ConfigError
from nlpkit.models import load_model
from nlpkit.models.liblinear import fit_binary_columns
from nlpkit.models.tfidf_lr import TfidfLogisticRegression
from nlpkit.split import kfold


@pytest.fixture(scope="module")
def agnews():
    return read_dataset(REPO / "data" / "agnews_sample.jsonl")


def test_one_vs_rest_scores_are_the_binary_models_normalised(agnews, tmp_path):
    train, valid = agnews.subset(np.arange(400)), agnews.subset(np.arange(400, 600))
    model = TfidfLogisticRegression(multiclass="ovr", cross_fit=0, n_jobs=1).fit(train, valid)
    scores = model.predict_proba(valid.texts)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0)
    # the weights are one binary liblinear model per class, as for multi-label data
    X = model._transform(model.vectorizers_, train.texts)
    W, b = fit_binary_columns(X, train.y, C=100.0, class_weight="balanced", tol=0.1, max_iter=1000, seed=0)
    # (X from transform, not fit_transform: the same up to rounding)
    np.testing.assert_allclose(model.coef_, W.astype(np.float32), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.intercept_, b, rtol=1e-9)
    raw = 1 / (1 + np.exp(-(model._transform(model.vectorizers_, valid.texts) @ model.coef_ + model.intercept_)))
    np.testing.assert_allclose(scores, raw / raw.sum(axis=1, keepdims=True), atol=1e-9)
    assert (scores.argmax(axis=1) == np.asarray(valid.y.argmax(axis=1)).ravel()).mean() > 0.6
    assert "prior_shift_choice" not in model.fit_info() and model.fit_info()["prior_shift"] is False
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_proba(valid.texts), scores)


def test_one_vs_rest_cross_fit_is_the_same_with_worker_processes(agnews, monkeypatch):
    from nlpkit.models import liblinear

    data = agnews.subset(np.arange(300))
    fold_of = kfold(data.y, 3, seed=0)
    monkeypatch.setattr(liblinear, "_PARALLEL_MIN_WORK", 0)
    one, two = TfidfLogisticRegression(multiclass="ovr", n_jobs=1), TfidfLogisticRegression(multiclass="ovr", n_jobs=2)
    oof1, oof2 = one.cross_fit(data, fold_of), two.cross_fit(data, fold_of)
    np.testing.assert_array_equal(oof1, oof2)
    np.testing.assert_allclose(oof1.sum(axis=1), 1.0)
    np.testing.assert_array_equal(one.coef_, two.coef_)
    with pytest.raises(ConfigError, match="multiclass must be one of 'multinomial', 'ovr'"):
        TfidfLogisticRegression(multiclass="softmax")

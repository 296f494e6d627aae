"""One contract test over every registered model family, plus the two families of the tests (the
fake keyword model and tests/extra_family.py's nearest centroid).

A family that cannot be imported, made with its parameters, fitted, saved or loaded fails here:
nothing is skipped, and every parameter given must be one the family declares.
"""

from __future__ import annotations

import numpy as np
import pytest

from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.models import REGISTRY, get_model_class, load_model
from nlpkit.models.base import BaselineOptions, Classifier, NotFittedError, read_model_json

import extra_family
import fake_model

# Small, fast settings per family so the contract test stays quick; others use their defaults.
# Every key must be a parameter the family declares (an unknown one fails when the model is made).
FAST_PARAMS: dict[str, dict] = {
    "tfidf-lr": {"seed": 0},
    # bigrams: on toy data fastText's unigram training diverges at random, so word_ngrams="auto"
    # (which also tries unigrams) is tested on the bundled samples in test_baseline_models.py
    "fasttext": {"epoch": 5, "dim": 8, "seed": 0, "threads": 1, "word_ngrams": 2, "max_df": None},
    "word2vec": {"vector_size": 8, "epochs": 5, "seed": 0, "workers": 1},
    "transformer": {"epochs": 1, "max_length": 32, "batch_size": 8, "seed": 0, "device": "cpu"},
}

TEST_FAMILIES = {fake_model.FAMILY: fake_model.IMPORT_PATH, extra_family.FAMILY: extra_family.IMPORT_PATH}
SLOW_FAMILIES = {"transformer"}  # > 10 s on 2 CPU cores (torch import + fine-tuning)
FAMILIES = [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FAMILIES else f
            for f in [*REGISTRY, *TEST_FAMILIES]]


def _model_class(family: str, monkeypatch) -> type[Classifier]:
    if family in TEST_FAMILIES:
        monkeypatch.setitem(REGISTRY, family, TEST_FAMILIES[family])
    return get_model_class(family)  # a family that cannot be imported fails the test


def _make(cls, family, request):
    params = dict(FAST_PARAMS.get(family, {}))
    if family == "transformer":  # fine-tunes a checkpoint folder: a tiny random one, built once
        params["model"] = str(request.getfixturevalue("tiny_checkpoint"))
    model = cls(**params)
    assert {k: model.get_params()[k] for k in params} == params  # every parameter given was kept
    return model


def _is_choices(value) -> bool:
    return isinstance(value, list) and all(
        isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(v, str) for v in pair) for pair in value)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", ["single", "multi"])
def test_classifier_contract(family, task, single_parts, multi_parts, tmp_path, monkeypatch, request):
    parts = single_parts if task == "single" else multi_parts
    cls = _model_class(family, monkeypatch)
    assert cls.family == family

    model = _make(cls, family, request)
    assert isinstance(model.get_params(), dict)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.predict_proba(["anything"])

    train, valid, test = parts["train"], parts["valid"], parts["test"]
    never = [j for j in range(train.n_labels) if train.y[:, j].sum() == 0]
    assert never, "the fixture must contain a label with no positive in train"

    assert model.fit(train, valid) is model
    assert model.label_names_ == train.label_names and model.task_ == task
    assert isinstance(model.fit_info(), dict)
    assert _is_choices(cls.describe_choices(model.fit_info())) and cls.describe_choices({}) == []

    scores = model.predict_proba(test.texts)
    assert scores.shape == (len(test), train.n_labels)
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1 + 1e-6).all()
    if task == "single":
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert model.predict_proba([]).shape == (0, train.n_labels)

    # same params, same data -> same scores (every random choice is seeded)
    twin = cls(**model.get_params())
    assert twin.get_params() == model.get_params()
    np.testing.assert_allclose(twin.fit(train, valid).predict_proba(test.texts), scores, rtol=1e-5, atol=1e-6)

    out = tmp_path / "model"
    model.save(out)
    meta = read_model_json(out)
    assert meta["family"] == family and meta["label_names"] == train.label_names and meta["task"] == task
    again = load_model(out)
    assert type(again) is cls and again.get_params() == model.get_params()
    np.testing.assert_allclose(again.predict_proba(test.texts), scores, rtol=1e-5, atol=1e-6)



class _ForgetsOnLoad(fake_model.KeywordClassifier):
    """Fits and saves, but its ``load`` restores nothing it learned."""

    family = "fake-forgetful"

    @classmethod
    def load(cls, path):
        return cls._from_model_json(path)[0]


@pytest.mark.parametrize("family, path, params, error", [
    ("fake-forgetful", "test_contract:_ForgetsOnLoad", {}, AttributeError),  # cannot predict once loaded
    ("fake-missing", "no_such_module:Nothing", {}, NlpkitError),  # not importable: a failure, not a skip
    (fake_model.FAMILY, fake_model.IMPORT_PATH, {"epochs": 3}, ConfigError),  # a parameter it does not have
])
def test_the_contract_test_fails_a_family_that_breaks_the_contract(family, path, params, error, single_parts,
                                                                   multi_parts, tmp_path, monkeypatch, request):
    monkeypatch.setitem(TEST_FAMILIES, family, path)
    monkeypatch.setitem(FAST_PARAMS, family, params)
    with pytest.raises(error):
        test_classifier_contract(family, "single", single_parts, multi_parts, tmp_path, monkeypatch, request)

@pytest.mark.parametrize("family", FAMILIES)
def test_baseline_declarations(family, monkeypatch):
    # what `nlpkit baseline` asks of a family, from its class alone (defaults in Classifier)
    cls = _model_class(family, monkeypatch)
    assert isinstance(cls.baseline, bool) and isinstance(cls.baseline_hint, str)
    options = BaselineOptions(seed=3, tune=True, cv=2, tune_seconds=5.0)
    params = cls.baseline_params(options)
    assert set(params) <= set(cls.param_defaults)  # only parameters the family declares
    assert params.get("seed", 3) == 3 and ("seed" in params) == ("seed" in cls.param_defaults)
    if cls.baseline:  # made as `nlpkit baseline` makes it
        assert cls(**params).get_params() == {**cls.param_defaults, **params}


def test_get_model_class_unknown_lists_names():
    with pytest.raises(ConfigError, match="unknown model 'nope'; choose one of: majority, tfidf-lr"):
        get_model_class("nope")


def test_missing_module_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(REGISTRY, "ghost", "nlpkit.models.ghost_family:Ghost")
    with pytest.raises(NlpkitError, match="model 'ghost' is not available"):
        get_model_class("ghost")


def test_load_model_errors(tmp_path, single_parts, fake_registry):
    with pytest.raises(NlpkitError, match="no nlpkit_model.json"):
        load_model(tmp_path)
    (tmp_path / "nlpkit_model.json").write_text("{not json")
    with pytest.raises(NlpkitError, match="cannot read"):
        load_model(tmp_path)
    model = fake_model.KeywordClassifier().fit(single_parts["train"])
    model.save(tmp_path / "kw")
    from nlpkit.models.majority import MajorityClassifier
    with pytest.raises(NlpkitError, match="is a 'fake-keyword' model, not 'majority'"):
        MajorityClassifier.load(tmp_path / "kw")


def test_unknown_param_rejected_up_front():
    with pytest.raises(ConfigError, match="unknown parameter\\(s\\) bogus for model 'fake-keyword'; known: min_count"):
        fake_model.KeywordClassifier(bogus=1)


def test_majority_scores_are_priors(single_parts, multi_parts):
    from nlpkit.models.majority import MajorityClassifier

    train = single_parts["train"]
    model = MajorityClassifier().fit(train)
    np.testing.assert_allclose(model.predict_proba(["x"])[0], [1 / 3, 1 / 3, 1 / 3, 0.0])
    skewed = train.subset([0, 1, 2, 3, 4, 8])  # 4 fruit, 1 engine, 1 sport
    m2 = MajorityClassifier().fit(skewed)
    assert m2.label_names_[int(np.argmax(m2.predict_proba(["x"])[0]))] == "fruit"
    assert m2.fit_info() == {"majority_label": "fruit"}
    multi = MajorityClassifier().fit(multi_parts["train"])
    np.testing.assert_allclose(multi.predict_proba(["x"])[0], [0.5, 0.5, 0.5, 0.0])

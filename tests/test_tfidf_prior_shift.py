"""tfidf-lr's prior shift (``prior_shift``): single-label logits plus the log class shares of train,
which undoes the equal class shares balanced weights assume (Saerens et al. 2002)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from conftest import make_dataset
from nlpkit.errors import ConfigError
from nlpkit.models import load_model
from nlpkit.models.tfidf_lr import TfidfLogisticRegression, _shifted_scores, class_shares
from nlpkit.split import kfold


def _imbalanced(n: int = 600, seed: int = 0):
    """Two classes, 85 % / 15 %, each document one word: "alpha" in 60 % of the rare class, 30 % of
    the common one. Knowing the shares, "common" is always the better guess (accuracy 0.85); under
    balanced weights "alpha" reads as "rare" (accuracy about 0.69)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        rare = rng.random() < 0.15
        texts.append("alpha" if rng.random() < (0.6 if rare else 0.3) else "beta")
        labels.append("rare" if rare else "common")
    return make_dataset(texts, labels)


def test_shifted_scores_are_the_softmax_of_shifted_logits():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 4))
    shares = np.array([0.5, 0.3, 0.2, 0.0])
    expected = softmax(z + np.log(np.where(shares > 0, shares, 1e-300)), axis=1)
    np.testing.assert_allclose(_shifted_scores(softmax(z, axis=1), shares), expected, atol=1e-12)
    # equal shares change nothing
    np.testing.assert_allclose(_shifted_scores(softmax(z, axis=1), np.full(4, 0.25)), softmax(z, axis=1))
    y = make_dataset(["a", "b", "c", "d"], ["x", "x", "x", "y"]).y
    np.testing.assert_allclose(class_shares(y), [0.75, 0.25])
    np.testing.assert_allclose(class_shares(y, np.array([2, 3])), [0.5, 0.5])


def test_cross_fit_chooses_the_shift_when_clearly_better_and_the_model_applies_it(tmp_path):
    data = _imbalanced()
    fold_of = kfold(data.y, 3, seed=0)
    model = TfidfLogisticRegression(n_jobs=1, choose_ngrams=False)
    oof = model.cross_fit(data, fold_of)
    choice = model.fit_info()["prior_shift_choice"]
    assert choice["metric"] == "out-of-fold accuracy"
    lo, _hi = choice["difference_interval_68"]
    assert lo > 0 and choice["chosen"] == "train" and model.fit_info()["prior_shift"] is True
    assert choice["out_of_fold"]["train"] > choice["out_of_fold"]["equal"]
    # the returned out-of-fold scores are the shifted ones the choice scored
    y = np.asarray(data.y.argmax(axis=1)).ravel()
    assert (oof.argmax(axis=1) == y).mean() == pytest.approx(choice["out_of_fold"]["train"])
    # the fitted model is the unshifted one with log(train shares) added to its intercepts
    plain = TfidfLogisticRegression(n_jobs=1, choose_ngrams=False, prior_shift=False)
    plain_oof = plain.cross_fit(data, fold_of)
    assert "prior_shift_choice" not in plain.fit_info() and plain.fit_info()["prior_shift"] is False
    assert (plain_oof.argmax(axis=1) == y).mean() == pytest.approx(choice["out_of_fold"]["equal"])
    np.testing.assert_array_equal(model.coef_, plain.coef_)
    np.testing.assert_allclose(model.intercept_, plain.intercept_ + np.log(class_shares(data.y)))
    np.testing.assert_allclose(model.predict_proba(data.texts[:20]),
                               _shifted_scores(plain.predict_proba(data.texts[:20]), class_shares(data.y)),
                               atol=1e-9)
    # saved and loaded, it scores the same
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_proba(data.texts[:20]),
                                  model.predict_proba(data.texts[:20]))
    described = dict(TfidfLogisticRegression.describe_choices(model.fit_info()))
    assert described["class shares of train"].startswith("out-of-fold accuracy ")
    # forced on: shifted without a choice
    forced = TfidfLogisticRegression(n_jobs=1, choose_ngrams=False, prior_shift=True)
    forced.cross_fit(data, fold_of)
    assert "prior_shift_choice" not in forced.fit_info() and forced.fit_info()["prior_shift"] is True
    np.testing.assert_allclose(forced.intercept_, model.intercept_)


def test_without_cross_fit_the_shift_is_chosen_on_valid():
    data = _imbalanced(900, seed=1)
    train, valid = data.subset(np.arange(900) < 600), data.subset(np.arange(900) >= 600)
    model = TfidfLogisticRegression(n_jobs=1, cross_fit=0, choose_ngrams=False).fit(train, valid)
    choice = model.fit_info()["prior_shift_choice"]
    assert choice["metric"] == "valid accuracy" and set(choice["valid"]) == {"equal", "train"}
    assert model.fit_info()["prior_shift"] is (choice["chosen"] == "train")
    # no valid part: nothing to choose on, no shift
    alone = TfidfLogisticRegression(n_jobs=1, cross_fit=0, choose_ngrams=False).fit(train)
    assert "prior_shift_choice" not in alone.fit_info() and alone.fit_info()["prior_shift"] is False


def test_the_shift_applies_only_to_single_label_data_with_balanced_weights():
    data = _imbalanced(300)
    fold_of = kfold(data.y, 3, seed=0)
    unweighted = TfidfLogisticRegression(n_jobs=1, choose_ngrams=False, class_weight=None, prior_shift=True)
    unweighted.cross_fit(data, fold_of)
    assert unweighted.fit_info()["prior_shift"] is False and "prior_shift_choice" not in unweighted.fit_info()
    multi = make_dataset(["aa bb", "bb cc", "cc dd", "dd aa", "aa cc", "bb dd"] * 5,
                         [["x", "y"], ["y"], ["x"], ["y"], ["x", "y"], ["x"]] * 5)
    model = TfidfLogisticRegression(n_jobs=1, choose_ngrams=False, min_df=1)
    model.cross_fit(multi, kfold(multi.y, 3, seed=0))
    assert model.fit_info()["prior_shift"] is False and "prior_shift_choice" not in model.fit_info()
    with pytest.raises(ConfigError, match="prior_shift must be one of 'auto', True, False"):
        TfidfLogisticRegression(prior_shift="yes")


def test_the_table_mentions_the_shift_when_made_or_close():
    def described(equal, train, chosen):
        info = {"prior_shift_choice": {"metric": "out-of-fold accuracy", "chosen": chosen,
                                       "out_of_fold": {"equal": equal, "train": train}}}
        return TfidfLogisticRegression.describe_choices(info)

    assert described(0.80, 0.70, "equal") == []  # the default kept, nothing close: not worth a line
    assert described(0.80, 0.80, "equal") == []
    (line,) = described(0.80, 0.81, "equal")
    assert line[0] == "equal class shares (balanced weights)" and "within about one standard error" in line[1]
    assert described(0.80, 0.85, "train") == [
        ("class shares of train", "out-of-fold accuracy 0.850 against 0.800 for equal class shares (balanced weights)")]

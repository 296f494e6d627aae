"""METRICS, bootstrap intervals and the randomisation test: exactness against naive recomputation,
coverage on synthetic data with a known true value, and p-value calibration."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import metrics as skm

from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.metrics import (
    METRICS,
    approx_randomization,
    bootstrap_ci,
    get_metric,
    paired_bootstrap_diff,
    significance,
)


@pytest.fixture(autouse=True)
def _quiet_sklearn():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _sklearn_metric(name: str, y: np.ndarray, pred: np.ndarray) -> float:
    """The reference value of a METRICS entry, from scikit-learn (zero_division=0)."""
    if name in ("accuracy", "subset_accuracy"):
        return skm.accuracy_score(y, pred)
    if name == "hamming_loss":
        return skm.hamming_loss(y, pred)
    average, part = name.split("_")
    fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[part]
    return fn(y, pred, average=average, zero_division=0)


def _multi(seed: int, n: int, n_labels: int, density: float = 0.2):
    rng = np.random.default_rng(seed)
    y = rng.random((n, n_labels)) < density
    y[:, 0] = False  # a label without positives
    y[:3] = False  # documents without labels
    pred = np.where(y, rng.random(y.shape) < 0.7, rng.random(y.shape) < 0.1)
    pred[5] = False  # a document without predictions
    return y, pred


def _one_hot(idx: np.ndarray, n_labels: int) -> np.ndarray:
    out = np.zeros((len(idx), n_labels), dtype=bool)
    out[np.arange(len(idx)), idx] = True
    return out


# --- METRICS against scikit-learn -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("seed,n,n_labels", [(0, 30, 4), (1, 300, 15)])
def test_every_metric_matches_sklearn_on_multi_label_data(name, seed, n, n_labels):
    y, pred = _multi(seed, n, n_labels)
    assert METRICS[name](sp.csr_matrix(y), pred) == pytest.approx(_sklearn_metric(name, y, pred), abs=1e-12)


@pytest.mark.parametrize("name", [m for m in sorted(METRICS) if "single" in METRICS[m].tasks])
def test_single_label_metrics_match_sklearn(name):
    rng = np.random.default_rng(4)
    true, guess = rng.integers(0, 5, 200), rng.integers(0, 4, 200)  # label 4 is never predicted
    y, pred = _one_hot(true, 5), _one_hot(guess, 5)
    assert METRICS[name](y, pred) == pytest.approx(_sklearn_metric(name, y, pred), abs=1e-12)
    if name == "micro_f1":
        assert METRICS[name](y, pred) == pytest.approx(skm.accuracy_score(true, guess))


def test_metric_registry_describes_each_metric():
    assert {
        "micro_f1",
        "macro_f1",
        "weighted_f1",
        "samples_f1",
        "accuracy",
        "subset_accuracy",
        "micro_precision",
        "micro_recall",
        "macro_precision",
        "macro_recall",
        "hamming_loss",
    } <= set(METRICS)
    assert METRICS["hamming_loss"].greater_is_better is False
    assert METRICS["accuracy"].tasks == ("single",) and "multi" in METRICS["subset_accuracy"].tasks
    with pytest.raises(ConfigError, match="unknown metric 'f1'; choose one of: accuracy, hamming_loss"):
        get_metric("f1")


# --- the batched computation equals a naive recomputation -----------------------------------------


def _common(seed: int, n: int):
    return _multi(seed, n, 6)


def _rare(seed: int, n: int):
    """Multi-label data whose last labels have one or two positives: resamples often leave them out."""
    y, pred = _multi(seed, n, 6)
    rare = np.zeros((n, 4), dtype=bool)
    rare[[1, 7, 8, 20, 33, 34], [0, 1, 1, 2, 3, 3]] = True
    guess = rare.copy()
    guess[33, 3] = False
    guess[40, 2] = True  # a false positive of a rare label
    return np.hstack([y, rare]), np.hstack([pred, guess])


@pytest.mark.parametrize("data", [_common, _rare])
@pytest.mark.parametrize("name", ["micro_f1", "macro_f1", "weighted_recall", "samples_f1", "hamming_loss"])
def test_bootstrap_interval_equals_naive_resampling_with_the_same_draws(name, data):
    # Each resample is scored exactly like the point estimate: scikit-learn on the resampled rows, every
    # label column kept (a rare label left out of a resample counts as 0, as a label absent from the
    # test part does); the interval is the percentile interval moved so its median sits on the point.
    y, pred = data(7, 60)
    n_boot, seed = 200, 11
    # The same draws bootstrap_ci makes: one batch of (documents x resamples) counts.
    weights = significance._bootstrap_weights(np.random.default_rng(seed), len(y), n_boot)
    naive = []
    for b in range(n_boot):
        rows = np.repeat(np.arange(len(y)), weights[:, b].astype(int))
        naive.append(_sklearn_metric(name, y[rows], pred[rows]))
    point, lo, hi = bootstrap_ci(y, pred, name, n_boot=n_boot, alpha=0.1, seed=seed)
    assert point == pytest.approx(_sklearn_metric(name, y, pred))
    shift = point - np.median(naive)
    assert (lo, hi) == pytest.approx(tuple(np.percentile(naive, [5, 95]) + shift))


def _f1(y: np.ndarray, p: np.ndarray, average: str) -> float:
    """Plain-numpy micro/macro F1 (zero_division=0), fast enough to enumerate 1,024 swaps."""
    tp, fp, fn = (y & p).sum(0), (~y & p).sum(0), (y & ~p).sum(0)
    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    den = 2 * tp + fp + fn
    return float(np.mean(np.where(den > 0, 2 * tp / np.maximum(den, 1), 0.0)))


def test_randomisation_p_value_matches_the_exact_permutation_distribution():
    # 10 documents: all 2^10 swap patterns can be enumerated; the Monte-Carlo p must agree.
    rng = np.random.default_rng(2)
    y = rng.random((10, 3)) < 0.4
    a = np.where(y, rng.random(y.shape) < 0.8, rng.random(y.shape) < 0.2)
    b = np.where(y, rng.random(y.shape) < 0.5, rng.random(y.shape) < 0.3)
    for average in ("micro", "macro"):
        name = f"{average}_f1"
        assert _f1(y, a, average) == pytest.approx(_sklearn_metric(name, y, a))
        observed = abs(_f1(y, a, average) - _f1(y, b, average))
        extreme = 0
        for swap in itertools.product([False, True], repeat=len(y)):
            s = np.array(swap)[:, None]
            diff = _f1(y, np.where(s, b, a), average) - _f1(y, np.where(s, a, b), average)
            extreme += abs(diff) >= observed - 1e-12
        exact = extreme / 2 ** len(y)
        assert 0.05 < exact < 0.95  # an informative case, neither extreme
        p = approx_randomization(y, a, b, name, n_iter=20000, seed=0)
        assert p == pytest.approx(exact, abs=0.015), name


def test_identical_systems_and_degenerate_intervals():
    y, pred = _multi(3, 50, 4)
    assert approx_randomization(y, pred, pred, "macro_f1", n_iter=100) == 1.0
    assert paired_bootstrap_diff(y, pred, pred, "micro_f1", n_boot=50) == (0.0, 0.0, 0.0)
    assert bootstrap_ci(y, y, "micro_f1", n_boot=50) == (1.0, 1.0, 1.0)


def test_results_depend_only_on_the_seed():
    y, pred = _multi(3, 80, 5)
    other = np.roll(pred, 1, axis=1)
    assert bootstrap_ci(y, pred, n_boot=300, seed=5) == bootstrap_ci(
        sp.csr_matrix(y), pred.astype(np.uint8), n_boot=300, seed=5
    )
    assert bootstrap_ci(y, pred, n_boot=300, seed=5) != bootstrap_ci(y, pred, n_boot=300, seed=6)
    assert approx_randomization(y, pred, other, n_iter=500, seed=1) == approx_randomization(
        y, pred, other, n_iter=500, seed=1
    )


def test_bad_arguments_raise_config_errors():
    y, pred = _multi(0, 20, 3)
    with pytest.raises(ConfigError, match="n_boot must be a whole number >= 1"):
        bootstrap_ci(y, pred, n_boot=0)
    with pytest.raises(ConfigError, match="alpha must be between 0 and 1"):
        paired_bootstrap_diff(y, pred, pred, alpha=1.5)
    with pytest.raises(ConfigError, match="n_iter must be a whole number >= 1"):
        approx_randomization(y, pred, pred, n_iter=0)
    with pytest.raises(ConfigError, match="seed must be a whole number"):
        bootstrap_ci(y, pred, seed=None)
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        approx_randomization(y, pred, pred, "auc")
    with pytest.raises(NlpkitError, match=r"pred_b has shape \(20, 2\) but y_true has shape \(20, 3\)"):
        paired_bootstrap_diff(y, pred, pred[:, :2])
    with pytest.raises(NlpkitError, match="empty set of documents"):
        bootstrap_ci(np.zeros((0, 3)), np.zeros((0, 3)))


# --- coverage on synthetic data with a known true value -------------------------------------------
# Cells are drawn independently: a label is true with probability q; a true label is predicted with
# probability r (recall), a false one with probability f. Per label, E[tp] = q r, E[fp] = (1 - q) f,
# E[fn] = q (1 - r), so the population F1 = 2 q r / (2 q r + (1 - q) f + q (1 - r)).


def _population_f1(q, r, f):
    q, r, f = map(np.asarray, (q, r, f))
    return 2 * q * r / (2 * q * r + (1 - q) * f + q * (1 - r))


def _population_micro_f1(q, r, f):
    tp, fp, fn = (q * r).sum(), ((1 - q) * f).sum(), (q * (1 - r)).sum()
    return 2 * tp / (2 * tp + fp + fn)


def _draw(rng, n, q, r_a, f_a, r_b=None, f_b=None):
    """Truth and one or two systems' predictions; the systems share one uniform per cell, so
    their errors are strongly correlated, as for two real models on the same documents."""
    q = np.broadcast_to(q, (q.size if np.ndim(q) else 1,))
    y = rng.random((n, q.size)) < q
    u = rng.random(y.shape)
    a = np.where(y, u < r_a, u < f_a)
    if r_b is None:
        return y, a
    return y, a, np.where(y, u < r_b, u < f_b)


REPEATS = 200


def test_bootstrap_interval_covers_a_known_accuracy_about_95_percent_of_the_time():
    rng = np.random.default_rng(100)
    p_true, n = 0.8, 300
    covered = 0
    for rep in range(REPEATS):
        true = rng.integers(0, 3, n)
        correct = rng.random(n) < p_true
        guess = np.where(correct, true, (true + 1) % 3)
        _, lo, hi = bootstrap_ci(_one_hot(true, 3), _one_hot(guess, 3), "accuracy", n_boot=1000, seed=rep)
        covered += lo <= p_true <= hi
    assert 0.90 <= covered / REPEATS <= 0.99


@pytest.mark.parametrize("name", ["micro_f1", "macro_f1"])
def test_bootstrap_interval_covers_a_known_f1_about_95_percent_of_the_time(name):
    rng = np.random.default_rng(200)
    q = np.array([0.1, 0.2, 0.3, 0.15, 0.25, 0.4])
    r, f = np.array([0.6, 0.7, 0.8, 0.5, 0.75, 0.9]), np.array([0.05, 0.1, 0.05, 0.02, 0.1, 0.2])
    per_label = _population_f1(q, r, f)
    truth = {"macro_f1": per_label.mean(), "micro_f1": _population_micro_f1(q, r, f)}[name]
    covered = 0
    for rep in range(REPEATS):
        y, pred = _draw(rng, 400, q, r, f)
        _, lo, hi = bootstrap_ci(y, pred, name, n_boot=1000, seed=rep)
        covered += lo <= truth <= hi
    assert 0.90 <= covered / REPEATS <= 0.99


@pytest.mark.parametrize("name", ["micro_f1", "macro_f1"])
def test_paired_interval_covers_a_known_difference_about_95_percent_of_the_time(name):
    rng = np.random.default_rng(300)
    q = np.array([0.2, 0.3, 0.15, 0.35])
    r_a, f_a = np.array([0.8, 0.75, 0.7, 0.85]), np.array([0.05, 0.08, 0.04, 0.1])
    r_b, f_b = np.array([0.7, 0.7, 0.6, 0.8]), np.array([0.08, 0.08, 0.06, 0.1])
    truth = {
        "macro_f1": (_population_f1(q, r_a, f_a) - _population_f1(q, r_b, f_b)).mean(),
        "micro_f1": _population_micro_f1(q, r_a, f_a) - _population_micro_f1(q, r_b, f_b),
    }[name]
    assert truth > 0.02  # a real difference, not a null
    covered = 0
    for rep in range(REPEATS):
        y, a, b = _draw(rng, 400, q, r_a, f_a, r_b, f_b)
        _, lo, hi = paired_bootstrap_diff(y, a, b, name, n_boot=1000, seed=rep)
        covered += lo <= truth <= hi
    assert 0.90 <= covered / REPEATS <= 0.99


def test_macro_f1_interval_with_rare_labels_contains_the_point_and_covers_the_expected_score():
    # 16 of 20 labels have about 3 positives in 300 documents, predicted well: a resample leaves all
    # of a label's positives out about 5 % of the time and that label then scores 0, so resampled
    # macro-F1 runs below the point (the plain percentile interval missed the point in 1 % of these
    # test sets, and covered the expected score in 70 %). The estimand: macro-F1 expected on a test
    # set of this size (the score itself is unbiased for it; the per-label population F1s are not
    # reachable when a test set can miss a label).
    rng = np.random.default_rng(700)
    n = 300
    q = np.r_[0.3, 0.2, 0.15, 0.1, np.full(16, 3 / n)]
    r, f = np.r_[0.8, 0.7, 0.7, 0.6, np.full(16, 0.9)], np.r_[0.05, 0.05, 0.03, 0.02, np.full(16, 0.0005)]
    r_b = np.r_[0.7, 0.7, 0.6, 0.6, np.full(16, 0.7)]
    macro = get_metric("macro_f1")
    expected = np.mean([macro(*_draw(rng, n, q, r, f)) for _ in range(2000)])
    covered = 0
    for rep in range(REPEATS):
        y, a, b = _draw(rng, n, q, r, f, r_b, f)
        point, lo, hi = bootstrap_ci(y, a, "macro_f1", n_boot=1000, seed=rep)
        assert lo <= point <= hi and hi - lo > 0.02, rep
        diff, d_lo, d_hi = paired_bootstrap_diff(y, a, b, "macro_f1", n_boot=200, seed=rep)
        assert d_lo <= diff <= d_hi, rep
        covered += lo <= expected <= hi
    assert 0.88 <= covered / REPEATS <= 0.99


def test_paired_interval_is_narrower_than_unpaired_for_correlated_systems():
    # Why pairing matters: with shared errors the difference is far less uncertain than each score.
    rng = np.random.default_rng(400)
    q = np.full(5, 0.3)
    y, a, b = _draw(rng, 500, q, 0.8, 0.05, 0.75, 0.05)
    _, lo_d, hi_d = paired_bootstrap_diff(y, a, b, n_boot=1000)
    _, lo_a, hi_a = bootstrap_ci(y, a, n_boot=1000)
    assert hi_d - lo_d < 0.7 * (hi_a - lo_a)


# --- randomisation test calibration ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["micro_f1", "macro_f1"])
def test_randomisation_p_values_are_uniform_under_the_null(name):
    # Two exchangeable systems: per document, a and b are independent draws from one distribution.
    rng = np.random.default_rng(500)
    q, r, f = np.array([0.2, 0.3, 0.4]), 0.7, 0.1
    p_values = []
    for rep in range(300):
        y = rng.random((150, 3)) < q
        a = np.where(y, rng.random(y.shape) < r, rng.random(y.shape) < f)
        b = np.where(y, rng.random(y.shape) < r, rng.random(y.shape) < f)
        p_values.append(approx_randomization(y, a, b, name, n_iter=999, seed=rep))
    p_values = np.array(p_values)
    # Under the null P(p <= alpha) <= alpha (about alpha here); 300 repeats: sd of a rate ~ 0.013.
    assert 0.01 <= (p_values <= 0.05).mean() <= 0.09
    assert 0.40 <= (p_values <= 0.5).mean() <= 0.60


def test_randomisation_p_value_is_small_under_a_real_difference():
    rng = np.random.default_rng(600)
    p_values = []
    for rep in range(20):
        true = rng.integers(0, 4, 300)
        guess_a = np.where(rng.random(300) < 0.85, true, (true + 1) % 4)
        guess_b = np.where(rng.random(300) < 0.70, true, (true + 2) % 4)
        p_values.append(
            approx_randomization(
                _one_hot(true, 4),
                _one_hot(guess_a, 4),
                _one_hot(guess_b, 4),
                "accuracy",
                n_iter=2000,
                seed=rep,
            )
        )
    # expected difference 0.15 with a standard error of about 0.034: p is nearly always tiny
    assert np.median(p_values) < 0.001 and max(p_values) < 0.05


def test_choose_over_reference_keeps_the_reference_unless_clearly_beaten():
    from nlpkit.metrics import choose_over_reference

    rng = np.random.default_rng(0)
    n = 600
    y = np.eye(3, dtype=int)[rng.integers(0, 3, n)]
    wrong = np.roll(y, 1, axis=1)

    def system(accuracy, seed):
        right = np.random.default_rng(seed).random(n) < accuracy
        return np.where(right[:, None], y, wrong)

    ref, much_better, slightly_better, worse = system(0.70, 1), system(0.85, 2), system(0.71, 3), system(0.5, 4)
    chosen, intervals = choose_over_reference(y, [ref, much_better], "accuracy")
    assert chosen == 1 and intervals[1][0] > 0
    assert choose_over_reference(y, [ref, worse], "accuracy")[0] == 0
    # within about one standard error (0.026 here): the reference stays
    chosen, intervals = choose_over_reference(y, [ref, slightly_better], "accuracy")
    assert chosen == 0 and intervals[1][0] <= 0 <= intervals[1][1]
    # among several clear winners the highest lower end wins; identical systems never replace it
    assert choose_over_reference(y, [ref, much_better, system(0.78, 5)], "accuracy")[0] == 1
    assert choose_over_reference(y, [ref, ref.copy()], "accuracy")[0] == 0

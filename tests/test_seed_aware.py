"""The seed-aware comparison (nlpkit.metrics.seed_aware_diff): coverage checked by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from nlpkit.metrics import paired_bootstrap_diff, seed_aware_diff


def _coverage(k: int, *, shift_sd: float, flip_sd: float, reps: int = 300, n: int = 500) -> tuple[float, float]:
    """Share of intervals that hold the population difference, and their mean width.

    Two systems, ``k`` seeds each, on a fresh test sample of ``n`` documents per repetition: a
    document is right when ease + system mean + seed shift + seed-and-document noise > 0, so the
    population accuracy is Phi(mean / sqrt(1 + shift_sd^2 + flip_sd^2)). ``shift_sd`` moves a whole
    seed up or down; ``flip_sd`` changes which documents a seed gets right."""
    rng = np.random.default_rng(0)
    means = (1.2, 1.0)
    scale = np.sqrt(1 + shift_sd ** 2 + flip_sd ** 2)
    truth = norm.cdf(means[0] / scale) - norm.cdf(means[1] / scale)
    y = np.zeros((n, 2), dtype=bool)
    y[:, 0] = True
    hits, widths = 0, []
    for rep in range(reps):
        ease = rng.normal(size=n)

        def seeds(mean: float) -> list[np.ndarray]:
            out = []
            for _ in range(k):
                right = ease + mean + shift_sd * rng.normal() + flip_sd * rng.normal(size=n) > 0
                out.append(np.c_[right, ~right])
            return out

        d = seed_aware_diff(y, seeds(means[0]), seeds(means[1]), "accuracy", n_boot=200, seed=rep)
        hits += d["lo"] <= truth <= d["hi"]
        widths.append(d["hi"] - d["lo"])
    return hits / reps, float(np.mean(widths))


@pytest.mark.parametrize("shift_sd, flip_sd", [(0.15, 0.6), pytest.param(0.3, 0.6, marks=pytest.mark.slow),
                                               pytest.param(0.0, 0.6, marks=pytest.mark.slow),
                                               pytest.param(0.15, 0.0, marks=pytest.mark.slow)])
def test_five_seeds_cover_the_population_difference_at_the_nominal_95_percent(shift_sd, flip_sd):
    coverage, _ = _coverage(5, shift_sd=shift_sd, flip_sd=flip_sd)
    assert 0.925 <= coverage <= 0.975


@pytest.mark.slow
def test_one_seed_per_system_misses_seed_variance_and_more_seeds_narrow_the_interval():
    # why seeds matter: with one seed the interval only knows the test documents
    one, _ = _coverage(1, shift_sd=0.15, flip_sd=0.6, reps=150)
    three, wide = _coverage(3, shift_sd=0.15, flip_sd=0.6, reps=150)
    five, narrow = _coverage(5, shift_sd=0.15, flip_sd=0.6, reps=150)
    assert one < 0.8 and three >= 0.9 and narrow < wide


def test_interval_and_p_value_agree_and_one_seed_is_the_paired_document_bootstrap():
    rng = np.random.default_rng(1)
    y = np.eye(3, dtype=bool)[rng.integers(0, 3, 300)]

    def noisy(p_right: float) -> np.ndarray:
        right = rng.random(300) < p_right
        return np.where(right[:, None], y, np.roll(y, 1, axis=1))

    for a_right, b_right in [(0.8, 0.8), (0.85, 0.75), (0.8, 0.78), (0.7, 0.9)]:
        d = seed_aware_diff(y, [noisy(a_right) for _ in range(3)], [noisy(b_right) for _ in range(4)], "accuracy",
                            n_boot=300, seed=0)
        assert (d["lo"] > 0 or d["hi"] < 0) == (d["p_value"] < 0.05)
        assert d["lo"] <= d["point"] <= d["hi"] and np.isfinite(d["df"])
        assert d["point"] == pytest.approx(np.mean(d["scores_a"]) - np.mean(d["scores_b"]))
    a, b = noisy(0.8), noisy(0.75)
    single = seed_aware_diff(y, [a], [b], "accuracy", n_boot=2000, seed=0)
    point, lo, hi = paired_bootstrap_diff(y, a, b, "accuracy", n_boot=2000, seed=0)
    assert single["point"] == pytest.approx(point) and single["df"] == float("inf")
    assert single["hi"] - single["lo"] == pytest.approx(hi - lo, rel=0.15)  # normal vs percentile interval

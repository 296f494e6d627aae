"""Confidence intervals and significance tests over documents, batched so thousands of resamples
cost one sparse matrix product.

Every metric in ``METRICS`` is a function of sums over documents of per-document statistics
(per-label true-positive / predicted / true indicators, or a per-document score). A bootstrap
resample is a count vector w over documents (how many times each was drawn), so its sums are
``w @ stats``; B resamples at once are one (K x n) sparse @ (n x B) dense product. The approximate
randomisation test swaps each document's predictions between two systems with probability 1/2:
with a 0/1 swap mask m, system a's sums become ``total_a + m @ (stats_b - stats_a)`` (and b's
``total_b - m @ (...)``), again one product per batch, over the documents where a and b differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.seeds import check_seed
from nlpkit.metrics import counts
from nlpkit.metrics._arrays import as_label_csr, check_same_shape, safe_divide

# Resamples per batch: keep the (n_docs x batch) weight matrix near 16 MB (peak ~4x that while drawing).
_BATCH_ELEMENTS = 1 << 21

Stats = tuple  # of (n_docs, k) matrices, sparse or dense


@dataclass(frozen=True)
class Metric:
    """A metric computed from binary predictions through per-document sufficient statistics.

    ``per_doc(y, pred)`` returns a tuple of (n_docs, k) matrices (csr float inputs); ``combine``
    maps their column sums — each (B, k), one row per resample — to B metric values.
    """

    name: str
    per_doc: Callable[[sparse.csr_matrix, sparse.csr_matrix], Stats]
    combine: Callable[[tuple[np.ndarray, ...]], np.ndarray]
    greater_is_better: bool = True
    description: str = ""
    tasks: tuple[str, ...] = ("single", "multi")  # tasks where the metric is meaningful

    def __call__(self, y_true, pred) -> float:
        """The metric on the full data."""
        y, p = _inputs(y_true, pred)
        return float(self.combine(_totals(self.per_doc(y, p)))[0])


def _label_stats(y: sparse.csr_matrix, p: sparse.csr_matrix) -> Stats:
    """Per document and label: true positive, predicted, true. (Not fp/fn: under randomisation the
    'true' block never changes, so its difference between systems is all zeros and costs nothing.)"""
    return y.multiply(p).tocsr(), p, y


def _micro_stats(y, p) -> Stats:
    return (np.column_stack([_row_sums(m) for m in _label_stats(y, p)]),)


def _micro_combine(part: int):
    def combine(sums):
        (s,) = sums
        return counts.precision_recall_f1(*_tp_fp_fn(tuple(s.T)))[part]

    return combine


def _tp_fp_fn(sums: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, predicted, true = sums
    return tp, predicted - tp, true - tp


def _doc_stats(value: Callable[[sparse.csr_matrix, sparse.csr_matrix], np.ndarray]):
    """Per-document value v_i; the metric is the (resample-weighted) mean of v."""

    def per_doc(y, p) -> Stats:
        v = np.asarray(value(y, p), dtype=np.float64).ravel()
        return (np.column_stack([v, np.ones_like(v)]),)

    return per_doc


def _doc_mean(sums: tuple[np.ndarray, ...]) -> np.ndarray:
    (s,) = sums
    return safe_divide(s[:, 0], s[:, 1])


def _row_sums(m) -> np.ndarray:
    return np.asarray(m.sum(axis=1), dtype=np.float64).ravel()


def _samples(part: str):
    def value(y, p):
        tp, n_pred, n_true = _row_sums(y.multiply(p)), _row_sums(p), _row_sums(y)
        den = {"precision": n_pred, "recall": n_true, "f1": (n_pred + n_true) / 2}[part]
        return safe_divide(tp, den)

    return value


def _exact_match(y, p):
    return (_row_sums(abs(y - p)) == 0).astype(np.float64)


def _hamming(y, p):
    return _row_sums(abs(y - p)) / max(y.shape[1], 1)


def _counts_metric(average: str, part: int):
    fn_avg = counts.AVERAGES[average]

    def combine(sums):
        return fn_avg(*_tp_fp_fn(sums))[part]

    return combine


def _build_registry() -> dict[str, Metric]:
    registry: dict[str, Metric] = {}
    parts = ("precision", "recall", "f1")
    for i, part in enumerate(parts):
        registry[f"micro_{part}"] = Metric(
            f"micro_{part}",
            _micro_stats,
            _micro_combine(i),
            description=f"{part} of the counts pooled over labels",
        )
        for average in ("macro", "weighted"):
            registry[f"{average}_{part}"] = Metric(
                f"{average}_{part}",
                _label_stats,
                _counts_metric(average, i),
                description=f"{average} average of per-label {part}",
            )
        registry[f"samples_{part}"] = Metric(
            f"samples_{part}",
            _doc_stats(_samples(part)),
            _doc_mean,
            description=f"mean over documents of per-document {part}",
            tasks=("multi",),
        )
    registry["subset_accuracy"] = Metric(
        "subset_accuracy",
        _doc_stats(_exact_match),
        _doc_mean,
        description="fraction of documents whose predicted label set is exactly right",
        tasks=("multi",),
    )
    # For one-hot single-label predictions, exact match is plain accuracy.
    registry["accuracy"] = Metric(
        "accuracy",
        _doc_stats(_exact_match),
        _doc_mean,
        description="fraction of documents predicted right",
        tasks=("single",),
    )
    registry["hamming_loss"] = Metric(
        "hamming_loss",
        _doc_stats(_hamming),
        _doc_mean,
        greater_is_better=False,
        description="fraction of (document, label) cells predicted wrong",
        tasks=("multi",),
    )
    return registry


METRICS: dict[str, Metric] = _build_registry()


def get_metric(name: str) -> Metric:
    """The registered metric called ``name``; ConfigError listing the choices otherwise."""
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown metric {name!r}; choose one of: {', '.join(sorted(METRICS))}") from None


def _inputs(y_true, *preds) -> tuple[sparse.csr_matrix, ...]:
    y = as_label_csr(y_true, name="y_true")
    out = [y]
    for i, pred in enumerate(preds):
        name = "pred" if len(preds) == 1 else f"pred_{'ab'[i]}" if len(preds) == 2 else f"preds[{i}]"
        p = as_label_csr(pred, name=name)
        check_same_shape(y.shape, p.shape, "y_true", name)
        out.append(p)
    if y.shape[0] == 0:
        raise NlpkitError("cannot resample an empty set of documents; give at least one document")
    return tuple(out)


def _totals(stats: Stats) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(m.sum(axis=0), dtype=np.float64).reshape(1, -1) for m in stats)


@dataclass(frozen=True)
class _Stacked:
    """A metric's per-document statistics side by side and transposed, one (K, n_docs) csr matrix,
    so a batch of B resamples costs one product with an (n_docs, B) weight matrix.

    Always sparse: scipy's csr @ dense costs nnz * B in one thread, which beats a multi-threaded
    BLAS product here (measured 4x faster wall time on 2 busy cores, where BLAS threads contend),
    and the statistics are mostly zeros (tp/predicted/true per label).
    """

    matrix_t: sparse.csr_matrix
    splits: tuple[int, ...]

    @classmethod
    def of(cls, stats: Stats, rows: np.ndarray | None = None) -> _Stacked:
        splits = tuple(np.cumsum([m.shape[1] for m in stats])[:-1])
        matrix = sparse.hstack([sparse.csr_matrix(m, dtype=np.float64) for m in stats], format="csr")
        if rows is not None:
            matrix = matrix[rows]
        return cls(matrix.T.tocsr(), splits)

    def weighted(self, weights_t: np.ndarray) -> tuple[np.ndarray, ...]:
        """Column sums of the statistics under each column of ``weights_t`` (n_docs x B): a tuple
        of (B, k) arrays, one per statistic."""
        sums = np.asarray(self.matrix_t @ weights_t, dtype=np.float64).T
        return tuple(np.split(sums, self.splits, axis=1))


def _batches(total: int, n_docs: int) -> Iterator[int]:
    step = max(1, _BATCH_ELEMENTS // max(n_docs, 1))
    for start in range(0, total, step):
        yield min(step, total - start)


def _bootstrap_weights(rng: np.random.Generator, n_docs: int, size: int) -> np.ndarray:
    """(n_docs, size) multinomial counts: how often each document is drawn in each of ``size``
    resamples (column = resample), via one bincount of uniform draws."""
    draws = rng.integers(0, n_docs, size=(size, n_docs), dtype=np.int64)
    flat = (draws * size + np.arange(size)[:, None]).ravel()
    return np.bincount(flat, minlength=n_docs * size).reshape(n_docs, size).astype(np.float64)


def _swap_masks(rng: np.random.Generator, n_docs: int, size: int) -> np.ndarray:
    """(n_docs, size) 0/1 matrix, each entry 1 with probability 1/2 (eight per random byte)."""
    raw = rng.integers(0, 256, size=(n_docs, (size + 7) // 8), dtype=np.uint8)
    return np.unpackbits(raw, axis=1, count=size).astype(np.float64)


def _check_resampling(n: int, alpha: float | None, name: str, seed) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {n!r}")
    check_seed(seed, "seed")
    if alpha is not None and not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1 (0.05 for a 95% interval), got {alpha!r}")


def _interval(point: float, values: np.ndarray, alpha: float) -> tuple[float, float]:
    """The alpha/2 and 1 - alpha/2 percentiles of the resampled ``values``, moved by ``point`` minus
    their median: the percentile interval with its median bias removed, so ``point`` always lies inside.

    Why: a resample is scored exactly like the point estimate, yet for macro averages with rare labels
    the resampled values sit below the point (a label whose one test document a resample leaves out,
    e^-1 = 37 % of the time, scores 0), so the plain percentile interval can miss its own point. BCa
    (Efron 1987) over-corrects once that bias passes the half-width, landing the interval on the far
    side of the point. Median-centring keeps the bootstrap's spread and skew around the score measured;
    for smooth metrics (micro-F1, accuracy) the shift is below a resample's granularity. The
    simulations behind this: docs/statistics.md, "Intervals".
    """
    lo, med, hi = np.percentile(values, [100 * alpha / 2, 50, 100 * (1 - alpha / 2)])
    return float(point + (lo - med)), float(point + (hi - med))


def bootstrap_ci(
    y_true, pred, metric: str = "micro_f1", *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Bootstrap interval of a metric, resampling documents with replacement: the percentile
    interval centred on the point estimate (its median bias removed; see ``_interval``).

    Parameters
    ----------
    y_true, pred
        0/1 (n_docs, n_labels) matrices, csr or dense; single-label predictions one-hot.
    metric
        A name in ``METRICS``.
    n_boot, alpha, seed
        Number of resamples, 1 - coverage (0.05: 95% interval), random seed.

    Returns
    -------
    (point, lo, hi): the metric on all documents and the interval's ends; lo <= point <= hi.
    """
    m = get_metric(metric)
    _check_resampling(n_boot, alpha, "n_boot", seed)
    y, p = _inputs(y_true, pred)
    stats = m.per_doc(y, p)
    point = float(m.combine(_totals(stats))[0])
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    stacked = _Stacked.of(stats)
    values = np.concatenate(
        [m.combine(stacked.weighted(_bootstrap_weights(rng, n, size))) for size in _batches(n_boot, n)]
    )
    return (point, *_interval(point, values, alpha))


def paired_bootstrap_diff(
    y_true,
    pred_a,
    pred_b,
    metric: str = "micro_f1",
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Paired bootstrap interval of metric(a) - metric(b): both systems are scored on the SAME
    resampled documents in every resample (Koehn 2004; Berg-Kirkpatrick et al. 2012).

    Returns
    -------
    (diff, lo, hi): the difference on all documents and its interval, centred like ``bootstrap_ci``'s.
    """
    m = get_metric(metric)
    _check_resampling(n_boot, alpha, "n_boot", seed)
    y, pa, pb = _inputs(y_true, pred_a, pred_b)
    stats_a, stats_b = m.per_doc(y, pa), m.per_doc(y, pb)
    diff = float(m.combine(_totals(stats_a))[0] - m.combine(_totals(stats_b))[0])
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    stacked_a, stacked_b = _Stacked.of(stats_a), _Stacked.of(stats_b)
    values = []
    for size in _batches(n_boot, n):
        w = _bootstrap_weights(rng, n, size)
        values.append(m.combine(stacked_a.weighted(w)) - m.combine(stacked_b.weighted(w)))
    return (diff, *_interval(diff, np.concatenate(values), alpha))


def seed_aware_diff(y_true, preds_a, preds_b=(), metric: str = "micro_f1", *, n_boot: int = 1000,
                    alpha: float = 0.05, seed: int = 0) -> dict:
    """mean over seeds of metric(a_i) minus mean over seeds of metric(b_j), with an interval and a
    p-value whose uncertainty includes both the test documents and the training seeds.

    ``preds_a`` / ``preds_b``: one prediction matrix per seed of each system, all on the same test
    documents (``preds_b`` empty: the interval of ``a``'s seed mean alone). Variance = document part +
    seed part: the bootstrap variance of the difference of seed means when the documents are
    resampled (the same resamples for every run: paired), plus var(a_i)/k_a + var(b_j)/k_b, the
    sample variances of the per-seed scores (0 with one seed), less what both parts count: each
    seed's own luck on particular documents. Training randomness and the test
    sample are the two sources a benchmark must count (Bouthillier et al. 2021, "Accounting for
    Variance in Machine Learning Benchmarks"); with few seeds the seed part is uncertain itself, so
    the interval is Student's t with Welch-Satterthwaite degrees of freedom (the document part
    counted with infinitely many). The p-value is two-sided from the same t and standard error, so
    the interval excludes 0 exactly when p < alpha.

    Returns ``{"point", "lo", "hi", "p_value", "se", "df", "scores_a", "scores_b"}`` (per-seed scores
    on all test documents).
    """
    from scipy import stats as st

    m = get_metric(metric)
    _check_resampling(n_boot, alpha, "n_boot", seed)
    preds_a, preds_b = list(preds_a), list(preds_b)
    if not preds_a:
        raise ConfigError("seed_aware_diff needs at least one prediction matrix for the first system.")
    y, *ps = _inputs(y_true, *preds_a, *preds_b)
    stats = [m.per_doc(y, p) for p in ps]
    scores = np.array([float(m.combine(_totals(s))[0]) for s in stats])
    k_a, k_b = len(preds_a), len(preds_b)
    sign = np.r_[np.full(k_a, 1.0 / k_a), np.full(k_b, -1.0 / k_b if k_b else 0.0)]
    point = float(sign @ scores)
    rng = np.random.default_rng(seed)
    n = y.shape[0]
    stacked = [_Stacked.of(s) for s in stats]
    boot = []  # (n_runs, n_boot): every run's score on each resample of the documents
    for size in _batches(n_boot, n):
        w = _bootstrap_weights(rng, n, size)
        boot.append(np.vstack([m.combine(sk.weighted(w)).ravel() for sk in stacked]))
    boot = np.hstack(boot)
    v_doc = float(np.var(sign @ boot, ddof=1)) if n_boot > 1 else 0.0
    parts, overlap = [], 0.0
    for rows in (slice(0, k_a), slice(k_a, k_a + k_b)):
        x, k = scores[rows], len(scores[rows])
        if k > 1 and n_boot > 1:
            parts.append((float(np.var(x, ddof=1)) / k, k - 1))
            # how much each seed's own luck on the resampled documents adds to the document part;
            # the seed part counts it too (it varies by seed), so it is taken out once:
            # var(one seed) - var(mean of k seeds) = (1 - 1/k) * that luck's variance
            one = float(np.mean(np.var(boot[rows], axis=1, ddof=1)))
            mean = float(np.var(boot[rows].mean(axis=0), ddof=1))
            overlap += max(one - mean, 0.0) / (k - 1)
    v_seed = sum(v for v, _ in parts)
    se = float(np.sqrt(max(v_doc - overlap, 0.0) + v_seed))
    df_den = sum(v * v / d for v, d in parts)
    df = float(se ** 4 / df_den) if df_den > 0 else float("inf")
    if se == 0:
        lo = hi = point
        p_value = 1.0 if point == 0 else 0.0
    else:
        q = float(st.t.ppf(1 - alpha / 2, df)) if np.isfinite(df) else float(st.norm.ppf(1 - alpha / 2))
        lo, hi = point - q * se, point + q * se
        tail = st.t.sf(abs(point) / se, df) if np.isfinite(df) else st.norm.sf(abs(point) / se)
        p_value = float(min(1.0, 2 * tail))
    return {"point": point, "lo": float(lo), "hi": float(hi), "p_value": p_value, "se": se, "df": df,
            "scores_a": [float(v) for v in scores[:k_a]], "scores_b": [float(v) for v in scores[k_a:]]}


def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p-values for several tests made together (Holm 1979, "A simple
    sequentially rejective multiple test procedure"): the i-th smallest of m is multiplied by
    m - i + 1, then made non-decreasing, capped at 1. Rejecting where the adjusted p < alpha keeps
    the chance of any false "significant" among the m at most alpha, whatever their dependence."""
    p = np.asarray(list(p_values), dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return [float(v) for v in adjusted]


def choose_over_reference(y_true, preds, metric: str = "micro_f1", *, n_boot: int = 1000, seed: int = 0
                          ) -> tuple[int, dict[int, tuple[float, float]]]:
    """Pick among systems scored on one held-out set, keeping the first (the reference) unless
    another is better by more than about one standard error.

    An alternative replaces the reference only when the 68 % paired-bootstrap interval of its
    metric minus the reference's lies above 0; among several such, the one with the highest lower
    end wins. Models use it to make a default choice (e.g. word n-grams) on validation data: a bare
    argmax on a few hundred documents follows the noise.

    Returns
    -------
    (index of the chosen system in ``preds``, {index of each alternative: (lo, hi)}).
    """
    chosen, best_lo, intervals = 0, 0.0, {}
    for i in range(1, len(preds)):
        _diff, lo, hi = paired_bootstrap_diff(y_true, preds[i], preds[0], metric, n_boot=n_boot, alpha=0.32,
                                              seed=seed)
        intervals[i] = (lo, hi)
        if lo > best_lo:
            chosen, best_lo = i, lo
    return chosen, intervals


def approx_randomization(
    y_true, pred_a, pred_b, metric: str = "micro_f1", *, n_iter: int = 10000, seed: int = 0
) -> float:
    """Two-sided p-value of metric(a) - metric(b) by approximate randomisation.

    Each iteration swaps every document's predictions between a and b with probability 1/2;
    p = (#{|diff*| >= |diff|} + 1) / (n_iter + 1) (Noreen 1989; Dror et al. 2018, "The Hitchhiker's
    Guide to Testing Statistical Significance in NLP"). The +1 counts the observed assignment, so p
    is never 0 and the test is valid at any n_iter.
    """
    m = get_metric(metric)
    _check_resampling(n_iter, None, "n_iter", seed)
    y, pa, pb = _inputs(y_true, pred_a, pred_b)
    stats_a, stats_b = m.per_doc(y, pa), m.per_doc(y, pb)
    total_a, total_b = _totals(stats_a), _totals(stats_b)
    observed = abs(float(m.combine(total_a)[0] - m.combine(total_b)[0]))
    # Only documents where a and b differ change anything when swapped: draw masks for those alone.
    delta = tuple(
        sparse.csr_matrix(b - a) if sparse.issparse(a) else np.asarray(b - a)
        for a, b in zip(stats_a, stats_b)
    )
    differ = np.zeros(y.shape[0], dtype=bool)
    for d in delta:
        differ |= np.asarray(abs(d).sum(axis=1)).ravel() > 0
    n = int(differ.sum())
    if n == 0:
        return 1.0
    moved_stats = _Stacked.of(delta, rows=np.flatnonzero(differ))
    # Tolerance so that a permutation reproducing the observed difference counts despite rounding.
    tol = 1e-12 * max(1.0, observed)
    rng = np.random.default_rng(seed)
    extreme = 0
    for size in _batches(n_iter, n):
        moved = moved_stats.weighted(_swap_masks(rng, n, size))
        a = tuple(t + d for t, d in zip(total_a, moved))
        b = tuple(t - d for t, d in zip(total_b, moved))
        extreme += int((np.abs(m.combine(a) - m.combine(b)) >= observed - tol).sum())
    return (extreme + 1) / (n_iter + 1)

"""Compare every classifier run on one split against a baseline, with paired uncertainty and cost.

Dror et al. (2018), "The Hitchhiker's Guide to Testing Statistical Significance in NLP", recommend
resampling tests for F1-type metrics, whose sampling distribution has no closed form: a bootstrap
over documents for intervals and approximate randomisation for p-values. Every run is scored on the
same test documents, so both are *paired*: the bootstrap draws the same resampled documents for all
runs (one seed), and the randomisation test swaps the two systems' predictions document by document.

:func:`build_report` returns one plain, JSON-ready dict; the renderers (markdown, HTML, rich table)
only format it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from nlpkit.errors import ConfigError, NlpkitError

REPORT_VERSION = 1
BEST_BASELINE = "best-baseline"
ALPHA = 0.05  # 95 % intervals, 5 % significance level
POWER = 0.8  # "what the test set can see": the difference found 80 % of the time (Cohen 1988's convention)
MAJORITY_MODEL = "majority"
PR_POINTS = 120  # points kept per precision-recall curve (enough for a smooth line, small HTML)

# Short display names for metrics in verdicts and column headers.
METRIC_LABELS = {
    "micro_f1": "micro-F1",
    "macro_f1": "macro-F1",
    "weighted_f1": "weighted-F1",
    "samples_f1": "samples-F1",
    "accuracy": "accuracy",
    "subset_accuracy": "subset accuracy",
    "hamming_loss": "Hamming loss",
}


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name.replace("_", " "))


@dataclass
class _Scored:
    """One run with its predictions aligned to the split's test documents and label order."""

    run: Any  # nlpkit.runs.Run
    label: str
    scores: np.ndarray  # float32 (n_test, n_labels), split label order
    pred: np.ndarray  # bool (n_test, n_labels)
    pred_csr: Any = None  # the same predictions as the metrics layer takes them
    headline: dict | None = None  # {"point", "lo", "hi"} of the headline metric
    members: list = None  # this run and the runs that differ from it only in seed, by seed (see seed_groups)

    @property
    def seeds(self) -> list:
        return [m.run.info.get("seed") for m in self.members]


@dataclass(frozen=True)
class _Test:
    """How every run is compared with the baseline: the headline metric and the resampling settings."""

    metric: str
    higher_better: bool
    n_boot: int
    n_perm: int
    seed: int


# --- selecting and aligning runs --------------------------------------------------------------

def _model_labels(runs) -> dict[str, str]:
    """Display label per run name: the model, plus the name's random suffix when a model repeats."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.model] = counts.get(run.model, 0) + 1
    labels = {}
    for run in runs:
        model = run.model or run.name
        labels[run.name] = model if counts[run.model] == 1 else f"{model} ({run.name.rsplit('-', 1)[-1]})"
    return labels


# Recorded options that do not change what a run learns, or name it: runs that differ only in these
# and in their seed are one model trained with several seeds.
_NOT_THE_MODEL = ("seed", "name", "resumed", "split_dir", "threads", "throughput_docs", "predict_batch_size")


def seed_group_key(run, ignore: tuple[str, ...] = ()) -> str:
    """What a run is apart from its seed: kind, model and every recorded option but the seed (and
    ``ignore``)."""
    import json

    def strip(d):
        return {k: strip(v) if isinstance(v, dict) else v for k, v in d.items()
                if k not in _NOT_THE_MODEL and k not in ignore}

    return json.dumps([run.kind, run.model, strip(run.info.get("config") or {})], sort_keys=True, default=str)


def seed_groups(runs) -> list[list]:
    """Runs grouped by :func:`seed_group_key`, each group sorted by seed (then name), groups in the
    order of their first run. A seed is in a group once: a repeated run of the same model and seed
    starts another group (another row)."""
    groups: list[list] = []
    open_groups: dict[str, list[list]] = {}
    for run in sorted(runs, key=lambda r: r.name):
        seed = run.info.get("seed")
        candidates = open_groups.setdefault(seed_group_key(run), [])
        home = next((g for g in candidates if all(m.info.get("seed") != seed for m in g)), None)
        if home is None:
            home = []
            candidates.append(home)
            groups.append(home)
        home.append(run)

    def by_seed(r):
        seed = r.info.get("seed")
        return (not isinstance(seed, int), seed if isinstance(seed, int) else 0, r.name)

    return [sorted(g, key=by_seed) for g in groups]


def _same_test(run, split_sha256: str, test_sha256: str) -> bool:
    data = run.info.get("data") or {}
    return data.get("split_sha256") == split_sha256 and data.get("test_sha256") == test_sha256


def _align(run, split, y_shape) -> tuple[np.ndarray, np.ndarray]:
    """The run's (scores, pred) re-ordered onto the split's test ids and label names.

    Raises NlpkitError when the run's predictions do not cover exactly the test documents, or
    name labels the split does not have.
    """
    ids, scores, pred = run.predictions()  # a missing or damaged file: the registry's error says how to fix it
    test_ids = split.test.ids
    n_test, n_labels = y_shape
    where = f"run {run.name} ({run.path})"
    position = {doc_id: i for i, doc_id in enumerate(ids)}
    if len(position) != len(ids) or len(ids) != n_test or any(i not in position for i in test_ids):
        missing = next((i for i in test_ids if i not in position), None)
        detail = f"e.g. test id {missing!r} has no prediction" if missing is not None else "duplicate or extra ids"
        raise NlpkitError(
            f"{where}: its {len(ids)} predictions do not match the {n_test} test documents of "
            f"{split.path} ({detail}); re-run it on this split or delete the run."
        )
    run_labels = list((run.info.get("data") or {}).get("label_names") or [])
    if len(run_labels) != scores.shape[1]:
        raise NlpkitError(
            f"{where}: run.json lists {len(run_labels)} labels but predictions.npz has {scores.shape[1]} "
            "columns; the run is damaged, re-run it."
        )
    column = {name: j for j, name in enumerate(split.label_names)}
    unknown = [name for name in run_labels if name not in column]
    if unknown:
        raise NlpkitError(
            f"{where}: predicts label {unknown[0]!r} that split {split.path} does not have; "
            "re-run it on this split."
        )
    order = np.fromiter((position[i] for i in test_ids), dtype=np.int64, count=n_test)
    cols = np.fromiter((column[name] for name in run_labels), dtype=np.int64, count=len(run_labels))
    aligned_scores = np.zeros((n_test, n_labels), dtype=np.float32)
    aligned_pred = np.zeros((n_test, n_labels), dtype=bool)
    aligned_scores[:, cols] = scores[order]
    aligned_pred[:, cols] = pred[order] != 0
    return aligned_scores, aligned_pred


def valid_score(run, metric: str) -> float | None:
    """``metric`` on the run's valid part as the run recorded it (out-of-fold for a cross-fitted
    model), or None when it recorded none."""
    try:
        value = run.metrics()["valid"]["metrics"][metric]
    except (KeyError, TypeError, OSError, ValueError, NlpkitError):
        return None
    return float(value) if isinstance(value, (int, float)) and np.isfinite(value) else None


def _mean_or_none(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def best_on_valid(candidates: list, scores: dict, higher_better: bool):
    """The candidate with the best valid score (ties and missing scores: the earliest name first)."""
    sign = 1.0 if higher_better else -1.0
    return min(candidates, key=lambda c: (scores[c] is None, -sign * (scores[c] or 0.0), c))


def _resolve_baseline(baseline: str, runs, *, split, split_dir, runs_root, metric, higher_better,
                      group_of: dict | None = None) -> Any:
    """The baseline run: ``best-baseline`` or a run named by folder name, path or unique model name.
    ``group_of``: run name -> the names of the runs that differ from it only in seed; a run's valid
    score is then its group's mean."""
    available = ", ".join(r.name for r in runs)
    if baseline == BEST_BASELINE:
        candidates = [r for r in runs if r.kind == "baseline" and r.model != MAJORITY_MODEL]
        candidates = candidates or [r for r in runs if r.kind == "baseline"]
        if not candidates:
            raise NlpkitError(
                f"no baseline run for split {split_dir} (runs: {available}); run `nlpkit baseline {split_dir}` "
                "first or pass --baseline RUN."
            )
        # chosen on valid evidence, never on the test part it is then compared on
        by_name = {r.name: r for r in candidates}
        every = {r.name: r for r in runs}
        scores = {name: _mean_or_none([valid_score(every[n], metric) for n in (group_of or {}).get(name, [name])])
                  for name in by_name}
        return by_name[best_on_valid(sorted(by_name), scores, higher_better)]

    by_name = {r.name: r for r in runs}
    if baseline in by_name:
        return by_name[baseline]
    by_model = [r for r in runs if r.model == baseline]
    if len(by_model) == 1:
        return by_model[0]
    if len(by_model) > 1:
        names = ", ".join(r.name for r in by_model)
        raise ConfigError(f"--baseline {baseline!r} matches several runs ({names}); pass one run name.")

    from nlpkit.runs import load_run
    from nlpkit.runs import runs_root as _root

    if not Path(baseline).exists() and not (_root(runs_root) / baseline).exists():
        raise NlpkitError(f"unknown baseline run {baseline!r}; runs for split {split_dir}: {available}.")
    run = load_run(baseline, runs_root)  # an existing folder that is no complete run: its own message
    for r in runs:  # the same folder given by another path
        if r.path.resolve() == run.path.resolve():
            return r
    if run.kind == "pretrain":
        raise NlpkitError(
            f"baseline run {run.name} is a pretrain run, not a classifier; pick one of: {available}."
        )
    if run.split_sha256 == split.fingerprint:
        raise NlpkitError(
            f"baseline run {run.name} was scored on a different test part than {split_dir} (test_sha256 "
            f"differs); re-run it or pick one of: {available}."
        )
    raise NlpkitError(
        f"baseline run {run.name} was made on another split (split_sha256 {str(run.split_sha256)[:12]}, "
        f"this split {split.fingerprint[:12]}); pick a run on {split_dir}: {available}."
    )


# --- per-label view and curves ----------------------------------------------------------------

def _label_f1(y: np.ndarray, pred: np.ndarray) -> list[float | None]:
    """F1 per label; None where the label is neither present nor predicted (undefined, shown blank)."""
    tp = np.count_nonzero(y & pred, axis=0)
    fp = np.count_nonzero(~y & pred, axis=0)
    fn = np.count_nonzero(y & ~pred, axis=0)
    den = 2 * tp + fp + fn
    return [None if d == 0 else float(2 * t / d) for t, d in zip(tp, den)]


def precision_recall_points(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall at every distinct score threshold, as sklearn's ``precision_recall_curve``.

    Same points and order (recall decreasing, ending at precision 1, recall 0), written with numpy:
    importing ``sklearn.metrics`` alone takes seconds, a large share of the report's time budget.
    """
    truth = np.asarray(truth, dtype=bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-scores, kind="mergesort")
    ranked = scores[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]  # last index of each distinct score
    tps = np.cumsum(truth[order])[last].astype(np.float64)
    fps = (last + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1] if tps[-1] else np.ones_like(tps)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]


def _pr_curve(y: np.ndarray, scores: np.ndarray) -> dict:
    """Micro-averaged precision-recall curve (every document-label pair pooled), downsampled."""
    if not y.any():
        return {"recall": [], "precision": [], "average_precision": None}
    precision, recall = precision_recall_points(y, scores)
    # sklearn's step-wise average precision: sum over thresholds of (R_n - R_{n-1}) * P_n
    ap = float(-np.sum(np.diff(recall) * precision[:-1]))
    # Evenly spaced in threshold rank and in recall, so both the steep and the flat parts keep shape.
    by_rank = np.linspace(0, len(recall) - 1, min(PR_POINTS, len(recall))).round().astype(int)
    ascending = recall[::-1]
    by_recall = len(recall) - 1 - np.searchsorted(ascending, np.linspace(0, 1, PR_POINTS)).clip(0, len(recall) - 1)
    keep = np.unique(np.r_[by_rank, by_recall])
    return {
        "recall": [round(float(v), 5) for v in recall[keep]],
        "precision": [round(float(v), 5) for v in precision[keep]],
        "average_precision": ap,
    }


def _train_support(split, n_labels: int) -> np.ndarray:
    """Positives per label in the training data: the train part, else every fold (no test)."""
    parts = [split.train] if split.train is not None else [
        ds for name, ds in split.parts.items() if name not in ("test", "valid")
    ]
    support = np.zeros(n_labels, dtype=np.int64)
    for ds in parts:
        if ds is not None:
            support += np.asarray(ds.y.sum(axis=0)).ravel().astype(np.int64)
    return support


# --- verdicts ---------------------------------------------------------------------------------

def format_signed(value: float, digits: int = 3) -> str:
    text = f"{value:+.{digits}f}"
    return text.replace("-", "\u2212")


def format_p(p: float | None) -> str:
    if p is None:
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def format_ratio(ratio: float) -> str:
    """4.5×, 40×, 1,250×: three significant digits, never scientific notation."""
    return f"{ratio:.3g}\u00d7" if ratio < 1000 else f"{ratio:,.0f}\u00d7"


def _cost_phrase(ratio: float | None) -> str:
    if ratio is None:
        return "prediction cost unknown"
    if 0.9 <= ratio <= 1.1:
        return "at about the same prediction cost"
    if ratio > 1:
        return f"at {format_ratio(ratio)} the prediction cost"
    return f"{format_ratio(1 / ratio)} cheaper to predict"


def verdict(row: dict, baseline_label: str, metric: str) -> str:
    """One plain sentence: how this run compares with the baseline, and at what cost."""
    diff = row["diff"]
    name = metric_label(metric)
    cost = _cost_phrase(row.get("cost_ratio"))
    interval = f"[{format_signed(diff['lo'])}, {format_signed(diff['hi'])}]"
    if not diff["significant"]:
        return (
            f"{row['label']}: no significant difference from {baseline_label} on {name} "
            f"({format_signed(diff['point'])} {interval}, {format_p_adjusted(diff)}), {cost}"
            f"{_detectable_phrase(diff, '; ')}"
        )
    direction = "better than" if diff["better"] else "worse than"
    return (
        f"{row['label']}: {format_signed(diff['point'])} {name} {interval} — {direction} {baseline_label}, "
        f"{format_p_adjusted(diff)}, {cost}"
    )


def detectable_difference(diff: dict, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference this comparison would find significant with probability ``power``
    (the minimum detectable effect, Bloom 1995): (q_{1-alpha/2} + q_{power}) * se.

    ``se`` is the comparison's standard error: the seed-aware t test's own (quantiles of Student's t
    with its df), else the paired bootstrap interval's half-width / z_{1-alpha/2} (normal quantiles).
    """
    from statistics import NormalDist

    df = diff.get("df")
    if diff.get("se") is not None and df is not None and np.isfinite(df):
        from scipy.stats import t

        q_alpha, q_power = float(t.ppf(1 - alpha / 2, df)), float(t.ppf(power, df))
        se = float(diff["se"])
    else:
        q_alpha, q_power = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
        se = diff.get("se") if diff.get("se") is not None else (diff["hi"] - diff["lo"]) / 2 / q_alpha
    return float((q_alpha + q_power) * se)


def _detectable_phrase(diff: dict, lead: str) -> str:
    """"; too few test documents to tell a difference smaller than ±0.031" (nothing when no
    detectable difference is recorded, or it rounds to 0: runs whose predictions never differ)."""
    value = diff.get("detectable")
    if value is None or round(value, 3) == 0:
        return ""
    what = "test documents and seeds" if "df" in diff else "test documents"  # df: the seed-aware test
    return f"{lead}too few {what} to tell a difference smaller than ±{value:.3f}"


# --- the report -------------------------------------------------------------------------------

def build_report(
    split_dir: str | os.PathLike,
    *,
    metric: str = "micro_f1",
    baseline: str = BEST_BASELINE,
    runs_root: str | os.PathLike | None = None,
    n_boot: int = 1000,
    n_perm: int = 10000,
    seed: int = 0,
    top_labels: int = 10,
    fold: int | None = None,
    examples: bool = True,
    measure_cost: bool = False,
    prices: dict[str, float] | None = None,
) -> dict:
    """Compare every classifier run on ``split_dir`` against a baseline.

    Parameters
    ----------
    split_dir : split folder (``nlpkit split`` output), or the loaded Split; its test part is the ground truth.
    metric : headline metric, a name from ``nlpkit.metrics.METRICS`` (default micro-F1).
    baseline : ``"best-baseline"`` (the run of kind ``baseline`` with the best recorded valid metric,
        other than ``majority``, which is used only when it is the sole baseline), or a run folder
        name, path or unique model name.
    runs_root : the run registry (default ``$NLPKIT_RUNS_DIR`` or ``./runs``).
    n_boot : bootstrap resamples for the 95 % intervals.
    n_perm : approximate-randomisation shuffles for the p-values.
    seed : one seed for every resampling, so the same runs give the same report.
    fold : for a k-fold split, the fold whose runs are compared (:func:`nlpkit.data.fold_split`).
    top_labels : how many labels to show per list (most frequent, most different).
    examples : show example documents in the error analysis; False keeps every document text out of
        the report (ids stay), e.g. for confidential data.
    measure_cost : re-measure every model's prediction speed on this machine (its saved model on the
        test texts; :mod:`nlpkit.report.cost`), so that every docs/s and cost ratio is from one machine.
    prices : ``{"cpu": per hour, "gpu": per hour}`` (:func:`nlpkit.report.cost.parse_prices`): training
        cost and the cost of a million predictions per row.

    Returns
    -------
    dict
        JSON-ready: ``split``, ``settings``, ``baseline``, ``headline`` (the best other model on valid
        against the baseline, in one sentence), ``rows`` (sorted by the headline metric, each with
        ``metric``/``diff`` intervals, secondary metrics, cost and ``verdict``; a ``diff`` that is not
        significant has the ``detectable`` difference), ``verdicts``, ``per_label``, ``errors`` (see
        :func:`error_report`), ``pr_curves`` and ``excluded`` runs.

    Raises
    ------
    NlpkitError
        No runs for the split, unknown metric or baseline, a baseline from another split, or a run
        whose predictions do not match the test documents.
    """
    from nlpkit.data import fold_split
    from nlpkit.report.leakage import leakage_section
    from nlpkit.runs import runs_root as _root
    from nlpkit._io import to_jsonable

    if n_boot < 1:
        raise ConfigError(f"--n-boot must be at least 1, got {n_boot}; 1000 is a good default.")
    if n_perm < 1:
        raise ConfigError(f"--n-perm must be at least 1, got {n_perm}; 10000 is a good default.")
    higher_better = check_metric(metric)
    split, split_dir = load_report_split(split_dir)
    if fold is not None:
        split = fold_split(split, fold)
        split_dir = f"{split_dir} --fold {fold}"  # how the messages below name it
    elif split.folds and split.test is None:
        raise ConfigError(f"{split_dir} is a k-fold split: choose a fold with --fold N (0..{len(split.folds) - 1}).")
    if split.test is None:
        raise NlpkitError(f"split {split_dir} has no test part; a report scores runs on the test part.")
    root = _root(runs_root)
    task = split.task
    test_sha256 = split.test_fingerprint  # hashes the test part: once
    runs, excluded = _select_runs(root, split.fingerprint, test_sha256)
    if not runs:
        raise NlpkitError(f"no runs for split {split_dir} in {root}; run `nlpkit baseline {split_dir}` first.")

    y = split.test.y
    y = (y.toarray() if sparse.issparse(y) else np.asarray(y)) != 0
    groups = seed_groups(runs)  # a model trained with several seeds is one row
    labels = _model_labels([g[0] for g in groups])
    several = any(len(g) > 1 for g in groups)
    scored = []
    for group in groups:
        members = [_Scored(run, "", *_align(run, split, y.shape)) for run in group]
        label = labels[group[0].name]
        if several:  # say how many seeds stand behind every row, one included
            label += f" ({len(group)} seed{'s' if len(group) > 1 else ''})"
        members[0].label, members[0].members = label, members
        scored.append(members[0])

    # Headline metric with a 95 % bootstrap interval per run (centred on the point estimate: see
    # nlpkit.metrics.significance._interval). The metrics layer draws its resamples from ``seed``
    # alone, so every run (and every paired difference) is scored on the same resampled documents.
    y_csr = sparse.csr_matrix(y, dtype=np.float64)  # the metrics layer works on csr: convert once
    test = _Test(metric=metric, higher_better=higher_better, n_boot=n_boot, n_perm=n_perm, seed=seed)
    for s in scored:
        for m in s.members:
            m.pred_csr = sparse.csr_matrix(m.pred, dtype=np.float64)
        s.headline = _seed_mean(y_csr, s, test) if len(s.members) > 1 else \
            _bootstrap(y_csr, s.pred_csr, metric, n_boot, seed)
    group_of = {run.name: [r.name for r in g] for g in groups for run in g}
    base_run = _resolve_baseline(baseline, runs, split=split, split_dir=split_dir, runs_root=runs_root,
                                 metric=metric, higher_better=higher_better, group_of=group_of)
    base = next(s for s in scored if base_run.name in group_of[s.run.name])

    secondary = [m for m in ("micro_f1", "macro_f1", "accuracy" if task == "single" else "subset_accuracy")
                 if m != metric]
    rows = [_row(s, base, y_csr, secondary, test) for s in scored]
    _cost_context(rows, scored, split, measure=measure_cost, prices=prices)
    # the majority floor is a sanity check, not one of the models a user chooses among
    adjust_for_multiplicity([r["diff"] for r in rows if r["diff"] is not None and r["model"] != MAJORITY_MODEL])
    for row in rows:
        if row["diff"] is not None:
            row["diff"]["detectable"] = None if row["diff"]["significant"] else detectable_difference(row["diff"])
            row["verdict"] = verdict(row, base.label, metric)
    sign = -1.0 if higher_better else 1.0
    rows.sort(key=lambda r: (sign * r["metric"]["point"], not r["is_baseline"], r["name"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank

    report = {
        "report_version": REPORT_VERSION,
        "split": {
            "path": str(Path(split_dir)),
            "split_sha256": split.fingerprint,
            "test_sha256": test_sha256,
            "task": task,
            "fold": fold,
            "n_test": int(y.shape[0]),
            "n_labels": int(y.shape[1]),
        },
        "settings": {
            "metric": metric,
            "metric_label": metric_label(metric),
            "higher_is_better": higher_better,
            "secondary": secondary,
            "baseline_requested": baseline,
            "n_boot": n_boot,
            "n_perm": n_perm,
            "seed": seed,
            "alpha": ALPHA,
            "power": POWER,
            "examples": examples,
            "measure_cost": measure_cost,
            "measured_on": _this_machine() if measure_cost else None,
            "prices_per_hour": prices,
            "runs_root": str(root),
        },
        "baseline": {"name": base.run.name, "label": base.label,
                     "chosen_by": (f"best valid {metric} among baseline runs" if baseline == BEST_BASELINE
                                   else "named with --baseline"),
                     "valid_metric": _mean_or_none([valid_score(m.run, metric) for m in base.members])},
        "headline": headline(rows, scored, base, metric),
        "rows": rows,
        "verdicts": [r["verdict"] for r in rows if r["verdict"]],
        "per_label": _per_label(split, y, scored, rows, top_labels),
        "errors": error_report(split, y, scored, base, rows, examples=examples, top_labels=top_labels),
        "pr_curves": {s.run.name: _pr_curve(y, s.scores) for s in scored},
        "excluded": excluded,
        "curves": _curves(root, split, test_sha256, y, metric=metric, n_boot=n_boot, seed=seed),
        "leakage": leakage_section(split, y_csr, {s.run.name: [m.pred_csr for m in s.members] for s in scored},
                                   metric),
    }
    return to_jsonable(report)


def _curves(root, split, test_sha256: str, y, *, metric: str, n_boot: int, seed: int) -> dict | None:
    from nlpkit.report.curves import build_curves, curve_runs

    return build_curves(curve_runs(root, split, test_sha256), split, y, metric=metric, n_boot=n_boot, seed=seed,
                        alpha=ALPHA, align=_align, labels_of=_model_labels, key_of=seed_group_key)


def check_metric(metric: str) -> bool:
    """Whether higher is better for ``metric``; a ConfigError naming the choices when unknown."""
    from nlpkit.metrics import METRICS

    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r}; use one of: {', '.join(sorted(METRICS))}.")
    return METRICS[metric].greater_is_better


def load_report_split(split_dir) -> tuple[Any, Any]:
    """``(split, how to name it)`` from a split folder, or from a Split the caller already loaded."""
    from nlpkit.data import Split, load_split

    if isinstance(split_dir, Split):
        return split_dir, split_dir.path
    return load_split(split_dir), split_dir


def _select_runs(root, split_sha256: str, test_sha256: str) -> tuple[list, list[dict]]:
    """Classifier runs scored on this split's test part, and the runs left out with the reason."""
    from nlpkit.runs import list_runs

    runs, excluded = [], []
    for run in list_runs(root, split_sha256=split_sha256):
        if run.kind == "pretrain":
            excluded.append({"name": run.name, "reason": "pretrain run: not a classifier"})
        elif run.role == "curve-point":
            continue  # drawn as a learning curve, not a contender (nlpkit.report.curves)
        elif run.role == "tune-trial":
            excluded.append({"name": run.name, "reason": "a trial of `nlpkit finetune --tune` (the trial it kept is compared)"})
        elif not _same_test(run, split_sha256, test_sha256):
            excluded.append({"name": run.name, "reason": "test part fingerprint differs from the split's"})
        else:
            runs.append(run)
    return runs, excluded


def _bootstrap(y_csr, pred_csr, metric: str, n_boot: int, seed: int) -> dict:
    from nlpkit.metrics import bootstrap_ci

    point, lo, hi = bootstrap_ci(y_csr, pred_csr, metric, n_boot=n_boot, alpha=ALPHA, seed=seed)
    return {"point": float(point), "lo": float(lo), "hi": float(hi)}


def _compare(y_csr, mine: _Scored, base: _Scored, test: _Test) -> dict:
    """Paired bootstrap interval of (run - baseline) and its approximate-randomisation p-value."""
    from nlpkit.metrics import approx_randomization, paired_bootstrap_diff

    d, lo, hi = paired_bootstrap_diff(y_csr, mine.pred_csr, base.pred_csr, test.metric, n_boot=test.n_boot,
                                      alpha=ALPHA, seed=test.seed)
    p = float(approx_randomization(y_csr, mine.pred_csr, base.pred_csr, test.metric, n_iter=test.n_perm,
                                   seed=test.seed))
    d, lo, hi = float(d), float(lo), float(hi)
    # Significant only when both agree: the interval excludes 0 and p < alpha.
    return {
        "point": d, "lo": lo, "hi": hi, "p_value": p,
        "significant": bool((lo > 0 or hi < 0) and p < ALPHA),
        "better": bool(d != 0 and (d > 0) == test.higher_better),
    }


def _row(s: _Scored, base: _Scored, y_csr, secondary: list[str], test: _Test) -> dict:
    """One leaderboard row: headline interval, secondary metrics, cost, and the comparison."""
    from nlpkit.metrics import METRICS

    dps, base_dps = _timing(s.run, "predict_docs_per_s"), _timing(base.run, "predict_docs_per_s")
    row = {
        "name": s.run.name,
        "label": s.label,
        "kind": s.run.kind,
        "model": s.run.model,
        "path": str(s.run.path),
        "is_baseline": s is base,
        "metric": s.headline,
        # several seeds: each secondary metric is the mean over seeds, as the headline is
        "secondary": {m: float(np.mean([METRICS[m](y_csr, x.pred_csr) for x in s.members])) for m in secondary},
        "fit_seconds": _timing(s.run, "fit_seconds"),
        "predict_docs_per_s": dps,
        # the serving cases, recorded by runs since they were (None before)
        "predict_docs_per_s_batch1": _timing(s.run, "predict_docs_per_s_batch1"),
        "predict_docs_per_s_batch32": _timing(s.run, "predict_docs_per_s_batch32"),
        "model_size_bytes": s.run.info.get("model_size_bytes"),
        "cost_ratio": base_dps / dps if base_dps and dps else None,
        "diff": None,
        "verdict": None,
    }
    if len(s.members) > 1:
        row["seeds"] = s.seeds
        row["seed_runs"] = [m.run.name for m in s.members]
        row["seed_scores"] = s.headline["seed_scores"]
        row["seed_sd"] = s.headline["sd"]
    if s is not base:
        row["diff"] = _compare_seeds(y_csr, s, base, test) if len(s.members) > 1 or len(base.members) > 1 \
            else _compare(y_csr, s, base, test)
    return row


def _cost_context(rows: list[dict], scored: list[_Scored], split, *, measure: bool, prices) -> None:
    """Each row's devices (recorded at run time), re-measured prediction speed with ``measure`` (the
    cost ratios then all come from this machine), and money with ``prices``; in place."""
    from nlpkit.report.cost import device_label, measure_prediction, money

    by_name = {s.run.name: s for s in scored}
    for row in rows:
        machine = by_name[row["name"]].run.info.get("machine")
        row["device"] = device_label(machine)  # where it trained (and, unless re-measured, predicted)
        row["machine"] = machine
        if measure:
            row["measured"] = measure_prediction(by_name[row["name"]].run, split.test.texts)
            row["predict_docs_per_s"] = row["measured"]["docs_per_s"]
            row["predict_docs_per_s_batch1"] = row["measured"]["docs_per_s_batch1"]
            row["predict_docs_per_s_batch32"] = row["measured"]["docs_per_s_batch32"]
    if measure:
        base_dps = next(r["predict_docs_per_s"] for r in rows if r["is_baseline"])
        for row in rows:
            dps = row["predict_docs_per_s"]
            row["cost_ratio"] = base_dps / dps if base_dps and dps else None
    if prices:
        for row in rows:
            train = (by_name[row["name"]].run.info.get("machine") or {}).get("device")
            predict = row["measured"]["machine"]["device"] if measure else train
            row["money"] = money(row, prices, predict_device=predict, train_device=train)


def _this_machine() -> str | None:
    from nlpkit.report.cost import device_label
    from nlpkit.runs import machine_info

    return device_label(machine_info())


def _seed_mean(y_csr, s: _Scored, test: _Test) -> dict:
    """The headline of a model trained with several seeds: the mean over seeds, its seed-aware
    interval (nlpkit.metrics.seed_aware_diff against nothing), each seed's score and their sd."""
    from nlpkit.metrics import seed_aware_diff

    d = seed_aware_diff(y_csr, [m.pred_csr for m in s.members], (), test.metric, n_boot=test.n_boot,
                        alpha=ALPHA, seed=test.seed)
    scores = d["scores_a"]
    return {"point": d["point"], "lo": d["lo"], "hi": d["hi"], "seed_scores": scores,
            "sd": float(np.std(scores, ddof=1))}


def _compare_seeds(y_csr, mine: _Scored, base: _Scored, test: _Test) -> dict:
    """The comparison when either side has several seeds: the seed-aware t test (documents and seeds),
    whose interval and p-value agree by construction."""
    from nlpkit.metrics import seed_aware_diff

    d = seed_aware_diff(y_csr, [m.pred_csr for m in mine.members], [m.pred_csr for m in base.members], test.metric,
                        n_boot=test.n_boot, alpha=ALPHA, seed=test.seed)
    point, lo, hi, p = d["point"], d["lo"], d["hi"], d["p_value"]
    return {
        "point": point, "lo": lo, "hi": hi, "p_value": p,
        "significant": bool((lo > 0 or hi < 0) and p < ALPHA),
        "better": bool(point != 0 and (point > 0) == test.higher_better),
        "test": f"seed-aware t ({len(mine.members)} vs {len(base.members)} seeds, df {d['df']:.1f})",
        "se": float(d["se"]), "df": float(d["df"]),  # for detectable_difference
    }


def adjust_for_multiplicity(diffs: list[dict]) -> None:
    """Holm-adjust the p-values of every comparison with the baseline made in one report (in place):
    ``p_holm``, ``comparisons``, and ``significant`` on the adjusted p (the interval must still
    exclude 0). With five models against one baseline, raw p-values call one of them "significant"
    by chance far more often than 5 %."""
    from nlpkit.metrics import holm

    for d, p in zip(diffs, holm([d["p_value"] for d in diffs])):
        d["p_holm"] = p
        d["comparisons"] = len(diffs)
        d["significant"] = bool((d["lo"] > 0 or d["hi"] < 0) and p < ALPHA)


def format_p_adjusted(diff: dict) -> str:
    """"p = 0.003", or with several comparisons "p = 0.009 (Holm, 3 comparisons)"."""
    m = diff.get("comparisons") or 1
    if m <= 1 or "p_holm" not in diff:
        return format_p(diff["p_value"])
    return f"{format_p(diff['p_holm'])} (Holm, {m} comparisons)"


def headline(rows: list[dict], scored: list[_Scored], base: _Scored, metric: str) -> dict:
    """The report's one answer: the best model other than the baseline, chosen on valid (a model with
    several seeds by its mean valid score, as the baseline is), against the baseline on test.

    Chosen on valid, not test, for the reason the baseline is: the best of several models on the test
    part is partly the luckiest one. Returns the comparison's figures and ``sentence``; ``model`` is
    None when no model but the baseline (and the majority floor) ran.
    """
    from nlpkit.metrics import METRICS

    out: dict = {"baseline": base.run.name, "baseline_label": base.label, "model": None}
    candidates = {r["name"]: r for r in rows if not r["is_baseline"] and r["model"] != MAJORITY_MODEL}
    if not candidates:
        out["sentence"] = (f"Only the baseline, {base.label}, ran on this split: "
                           "there is no other model to compare it with yet.")
        return out
    by_name = {s.run.name: s for s in scored}
    valid = {n: _mean_or_none([valid_score(m.run, metric) for m in by_name[n].members]) for n in candidates}
    name = best_on_valid(sorted(candidates), valid, METRICS[metric].greater_is_better)
    row, d = candidates[name], candidates[name]["diff"]
    out.update({
        "model": name, "label": row["label"], "valid_metric": valid[name],
        "chosen_by": (f"best valid {metric} among the other models" if valid[name] is not None
                      else "no model recorded a valid score: the first by name"),
        "seeds": len(by_name[name].members),
        **{k: d.get(k) for k in ("point", "lo", "hi", "p_value", "p_holm", "comparisons", "significant",
                                  "better", "detectable")},
        "cost_ratio": row["cost_ratio"],
    })
    who = (f"{row['label']}, the best of the other models on valid," if valid[name] is not None
           else f"{row['label']} (no model recorded a valid score to choose by),")
    seeds = ", counting seed-to-seed variation" if "df" in d else ""
    figures = (f"{format_signed(d['point'])} {metric_label(metric)} on the test set (95% interval "
               f"{format_signed(d['lo'])} to {format_signed(d['hi'])}{seeds}), {format_p_adjusted(d)}")
    cost = _cost_phrase(row["cost_ratio"])
    if d["significant"]:
        verb = "is better than" if d["better"] else "is worse than"
        out["sentence"] = f"{who} {verb} {base.label}: {figures}, {cost}."
    else:
        out["sentence"] = (f"{who} is not measurably different from {base.label}: {figures}"
                           f"{_detectable_phrase(d, '; ')}; {cost}.")
    return out


def _first_seed_note(s: _Scored) -> str | None:
    """Error analysis looks at single runs: for a model with several seeds, its first seed's."""
    if len(s.members) < 2:
        return None
    return f"its first seed's run only (seed {s.seeds[0]}, {s.run.name}; {len(s.members)} seeds in all)"


def error_report(split, y: np.ndarray, scored: list[_Scored], base: _Scored, rows: list[dict], *,
                 examples: bool = True, top_labels: int = 10) -> dict:
    """Error analysis of the baseline against every other model (the majority floor left out):
    agreement counts and McNemar's test (:func:`nlpkit.report.error_analysis.compare_errors`), and for
    a single-label split with at most 30 labels the confusion matrices of the baseline and of the best
    other model on the headline metric. ``examples=False``: no document text."""
    from nlpkit.report.error_analysis import MAX_CONFUSION_LABELS, compare_errors, confusion_matrix

    by_name = {s.run.name: s for s in scored}
    others = [by_name[r["name"]] for r in rows if not r["is_baseline"] and r["model"] != MAJORITY_MODEL]
    comparisons = []
    for s in others:  # s is its seed group's first run (seed_groups sorts by seed)
        comparisons.append({"name": s.run.name, "label": s.label, "note": _first_seed_note(s),
                            "baseline_note": _first_seed_note(base),
                            **compare_errors(y, split.label_names, s, base, test=split.test, task=split.task,
                                             examples=examples, top_labels=top_labels)})
    if len(comparisons) > 1:  # one test per model against the same baseline: adjusted as the leaderboard's
        from nlpkit.metrics import holm

        for c, p in zip(comparisons, holm([c["mcnemar_p"] for c in comparisons])):
            c["mcnemar_p_holm"], c["comparisons"] = p, len(comparisons)
    confusion = None
    if split.task == "single" and y.shape[1] <= MAX_CONFUSION_LABELS:
        shown = [base] + others[:1]  # rows are sorted by the headline metric: others[0] is the best
        confusion = {"labels": list(split.label_names), "matrices": [
            {"name": s.run.name, "label": s.label, "is_baseline": s is base, "note": _first_seed_note(s),
             **confusion_matrix(y, s.pred)} for s in shown]}
    return {"baseline": base.run.name, "baseline_label": base.label, "examples": examples,
            "comparisons": comparisons, "confusion": confusion}


def _timing(run, key: str) -> float | None:
    value = (run.info.get("timings") or {}).get(key)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _per_label(split, y: np.ndarray, scored: list[_Scored], rows: list[dict], top: int) -> dict:
    """F1 per label for each run, train/test support, and the labels where runs differ most."""
    order = [r["name"] for r in rows]  # columns in leaderboard order
    by_name = {s.run.name: s for s in scored}
    f1 = {name: _label_f1(y, by_name[name].pred) for name in order}
    train_support = _train_support(split, y.shape[1])
    test_support = y.sum(axis=0)
    # The majority floor scores 0 on nearly every label; with two or more real models, leave it out
    # of the spread so "where runs differ most" points at labels the models disagree on.
    models = {s.run.name: s.run.model for s in scored}
    compared = [n for n in order if models[n] != MAJORITY_MODEL]
    compared = compared if len(compared) >= 2 else order
    labels = []
    for j, label in enumerate(split.label_names):
        values = [f1[name][j] for name in compared]
        defined = [v for v in values if v is not None]
        spread = (max(defined) - min(defined)) if len(defined) > 1 else 0.0
        labels.append({
            "label": label,
            "train_support": int(train_support[j]),
            "test_support": int(test_support[j]),
            "f1": {name: f1[name][j] for name in order},
            "spread": float(spread),
        })
    frequent = sorted(labels, key=lambda d: (-d["train_support"], -d["test_support"], d["label"]))[:top]
    different = sorted(
        (d for d in labels if d["spread"] > 0), key=lambda d: (-d["spread"], -d["test_support"], d["label"])
    )[:top]
    return {
        "runs": order,
        "spread_over": compared,
        "labels": labels,
        "most_frequent": [d["label"] for d in frequent],
        "most_different": [d["label"] for d in different],
    }

"""``nlpkit report`` on a k-fold split: every model's score over the folds against the baseline.

Each fold is a separate test set (:func:`nlpkit.data.fold_split`), so a model's K scores are K
estimates of one quantity. The comparison with the baseline uses the per-fold differences with the
corrected resampled t-test of Nadeau & Bengio (2003, "Inference for the generalization error"):
training sets of different folds overlap, so the folds' differences are correlated and the plain
t-test's variance ``s²/K`` is too small; the correction uses ``(1/K + n_test/n_train) · s²``, with
K − 1 degrees of freedom (Bouckaert & Frank 2004 recommend it for comparing learners by
cross-validation). Only models with a run on every fold are compared; the newest run of a model on a
fold is the one used.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.report.compare import (ALPHA, BEST_BASELINE, MAJORITY_MODEL, _align, _select_runs, _timing,
                                   adjust_for_multiplicity, best_on_valid, check_metric, format_p,
                                   format_p_adjusted, format_signed, load_report_split, metric_label, valid_score)

CV_REPORT_VERSION = 1


def corrected_resampled_t(diffs, test_over_train: float) -> dict[str, float]:
    """Mean of the per-fold differences, its 95 % interval and two-sided p-value under the corrected
    resampled t-test (Nadeau & Bengio 2003): variance ``(1/K + n_test/n_train) · s²``, K − 1 df.

    Differences that are equal on every fold have no spread to test: p is 1 when they are all 0,
    else 0, and the interval is the point.
    """
    from scipy import stats

    d = np.asarray(diffs, dtype=np.float64)
    k = d.size
    if k < 2:
        raise ConfigError("a cross-validation comparison needs at least 2 folds.")
    mean = float(d.mean())
    var = (1.0 / k + float(test_over_train)) * float(d.var(ddof=1))
    if var <= 0:
        return {"point": mean, "lo": mean, "hi": mean, "p_value": 1.0 if mean == 0 else 0.0}
    se = math.sqrt(var)
    t = mean / se
    half = float(stats.t.ppf(1 - ALPHA / 2, k - 1)) * se
    return {"point": mean, "lo": mean - half, "hi": mean + half, "p_value": float(2 * stats.t.sf(abs(t), k - 1))}


def build_cv_report(split_dir: str | os.PathLike, *, metric: str = "micro_f1", baseline: str = BEST_BASELINE,
                    runs_root: str | os.PathLike | None = None) -> dict:
    """Compare the models run on every fold of the k-fold split ``split_dir`` (without a held-out
    test part) against a baseline; a JSON-ready dict (``rows`` sorted by mean score).

    ``baseline`` is ``"best-baseline"`` (the best model of kind baseline other than majority) or a
    model name. Raises NlpkitError when no model has a run on every fold.
    """
    from nlpkit.data import fold_split
    from nlpkit.metrics import METRICS
    from nlpkit.runs import runs_root as _root

    higher_better = check_metric(metric)
    split, split_dir = load_report_split(split_dir)
    if not split.folds or split.test is not None:
        raise ConfigError(f"{split_dir} is not a k-fold split without a test part; a cross-validation report "
                          "needs one (`nlpkit split --folds K`).")
    root = _root(runs_root)
    k = len(split.folds)
    # per model: fold -> (run, score); the newest run of a model on a fold wins
    by_model: dict[str, dict[int, tuple[Any, float]]] = {}
    kinds: dict[str, str] = {}
    ratios, ignored = [], []
    for fold in range(k):
        view = fold_split(split, fold)
        ratios.append(len(view.test) / len(view.train))
        runs, _excluded = _select_runs(root, view.fingerprint, view.test_fingerprint)
        y = view.test.y
        y_csr = sparse.csr_matrix((y.toarray() if sparse.issparse(y) else np.asarray(y)) != 0, dtype=np.float64)
        for run in sorted(runs, key=lambda r: r.name):
            _scores, pred = _align(run, view, y_csr.shape)
            model = run.model or run.name
            if fold in by_model.get(model, {}):
                ignored.append(by_model[model][fold][0].name)
            value = float(METRICS[metric](y_csr, sparse.csr_matrix(pred, dtype=np.float64)))
            by_model.setdefault(model, {})[fold] = (run, value)
            kinds[model] = run.kind
    complete = {m: runs for m, runs in by_model.items() if len(runs) == k}
    incomplete = [{"model": m, "folds": sorted(runs)} for m, runs in by_model.items() if len(runs) < k]
    if not complete:
        raise NlpkitError(f"no model has a run on every fold of {split_dir} ({k} folds) in {root}; "
                          f"run `nlpkit baseline {split_dir}` first.")
    means = {m: float(np.mean([v for _, v in runs.values()])) for m, runs in complete.items()}
    valid_means = {m: _mean_of([valid_score(run, metric) for run, _ in runs.values()]) for m, runs in complete.items()}
    base = _pick_baseline(baseline, complete, kinds, valid_means, higher_better, split_dir)
    test_over_train = float(np.mean(ratios))
    rows = []
    for model, runs in complete.items():
        values = [runs[f][1] for f in range(k)]
        row = {
            "model": model, "kind": kinds[model], "is_baseline": model == base,
            "mean": means[model], "sd": float(np.std(values, ddof=1)), "per_fold": values,
            "runs": [runs[f][0].name for f in range(k)],
            "fit_seconds": _mean_of(_timing(runs[f][0], "fit_seconds") for f in range(k)),
            "predict_docs_per_s": _mean_of(_timing(runs[f][0], "predict_docs_per_s") for f in range(k)),
            "diff": None, "verdict": None,
        }
        if model != base:
            diffs = [v - complete[base][f][1] for f, v in enumerate(values)]
            d = row["diff"] = corrected_resampled_t(diffs, test_over_train)
            d["per_fold"] = diffs
            d["significant"] = bool(d["p_value"] < ALPHA and (d["lo"] > 0 or d["hi"] < 0))
            d["better"] = bool(d["point"] != 0 and (d["point"] > 0) == higher_better)
        rows.append(row)
    adjust_for_multiplicity([r["diff"] for r in rows if r["diff"] is not None and r["model"] != MAJORITY_MODEL])
    for row in rows:
        if row["diff"] is not None:
            row["verdict"] = _verdict(row, base, metric, higher_better, k)
    sign = -1.0 if higher_better else 1.0
    rows.sort(key=lambda r: (sign * r["mean"], not r["is_baseline"], r["model"]))
    return {
        "report_version": CV_REPORT_VERSION,
        "kind": "cross-validation",
        "split": {"path": str(Path(split_dir)), "split_sha256": split.fingerprint, "task": split.task, "folds": k,
                  "test_over_train": test_over_train},
        "settings": {"metric": metric, "metric_label": metric_label(metric), "higher_is_better": higher_better,
                     "baseline_requested": baseline,
                     "test": "Corrected resampled t-test over the folds (Nadeau & Bengio 2003), 95 % interval"},
        "baseline": base,
        "rows": rows,
        "verdicts": [r["verdict"] for r in rows if r["verdict"]],
        "incomplete": incomplete,
        "ignored_older_runs": ignored,
    }


def _mean_of(values) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _pick_baseline(baseline: str, complete: dict, kinds: dict, valid_means: dict, higher_better: bool,
                   split_dir) -> str:
    """The named model, or the baseline model with the best mean valid metric over the folds."""
    if baseline != BEST_BASELINE:
        if baseline not in complete:
            raise ConfigError(f"--baseline {baseline!r} has no run on every fold of {split_dir}; models with one: "
                              f"{', '.join(sorted(complete))}.")
        return baseline
    candidates = [m for m in complete if kinds[m] == "baseline" and m != MAJORITY_MODEL]
    candidates = candidates or [m for m in complete if kinds[m] == "baseline"]
    if not candidates:
        raise NlpkitError(f"no baseline model has a run on every fold of {split_dir}; run `nlpkit baseline "
                          f"{split_dir}` first, or name a model with --baseline.")
    return best_on_valid(sorted(candidates), valid_means, higher_better)


def _verdict(row: dict, base: str, metric: str, higher_better: bool, k: int) -> str:
    d = row["diff"]
    if d["significant"]:
        word = "better than" if d["better"] else "worse than"
    else:
        word = "not distinguishable from"
    return (f"{row['model']}: {format_signed(d['point'])} {metric_label(metric)} "
            f"[{format_signed(d['lo'])}, {format_signed(d['hi'])}] over {k} folds — {word} {base}, "
            f"{format_p_adjusted(d)}")


def cv_table(report: dict):
    """A rich Table of a cross-validation report (the baseline row in bold)."""
    from rich.table import Table
    from rich.text import Text

    s = report["settings"]
    k = report["split"]["folds"]
    table = Table(title=f"{report['split']['path']}: {s['metric_label']} over {k} folds, baseline {report['baseline']}",
                  title_justify="left")
    for i, col in enumerate(["#", "model", "kind", "mean ± sd", "Δ vs baseline [95% CI]", "p", "per fold",
                             "fit time", "docs/s"]):
        table.add_column(col, justify="left" if i in (1, 2) else "right")
    for rank, row in enumerate(report["rows"], 1):
        d = row["diff"]
        cells = [str(rank), row["model"] + (" (baseline)" if row["is_baseline"] else ""), row["kind"],
                 f"{row['mean']:.3f} ± {row['sd']:.3f}",
                 "baseline" if d is None else f"{format_signed(d['point'])} [{format_signed(d['lo'])}, {format_signed(d['hi'])}]",
                 "–" if d is None else ("< 0.001" if d.get("p_holm", d["p_value"]) < 0.001 else f"{d.get('p_holm', d['p_value']):.3f}"),
                 " ".join(f"{v:.3f}" for v in row["per_fold"]),
                 "–" if row["fit_seconds"] is None else f"{row['fit_seconds']:.1f} s",
                 "–" if row["predict_docs_per_s"] is None else f"{row['predict_docs_per_s']:,.0f}"]
        table.add_row(*(Text(c) for c in cells), style="bold" if row["is_baseline"] else None)
    return table


def render_cv_markdown(report: dict) -> str:
    s = report["settings"]
    k = report["split"]["folds"]
    lines = [f"# {report['split']['path']}: {s['metric_label']} over {k} folds", "",
             f"Baseline: **{report['baseline']}**. {s['test']}.", "",
             "| # | model | kind | mean ± sd | Δ vs baseline [95% CI] | p | per fold |",
             "|---|---|---|---|---|---|---|"]
    for rank, row in enumerate(report["rows"], 1):
        d = row["diff"]
        lines.append("| " + " | ".join([
            str(rank), row["model"] + (" (baseline)" if row["is_baseline"] else ""), row["kind"],
            f"{row['mean']:.4f} ± {row['sd']:.4f}",
            "baseline" if d is None else f"{format_signed(d['point'])} [{format_signed(d['lo'])}, {format_signed(d['hi'])}]",
            "–" if d is None else format_p(d.get("p_holm", d["p_value"])),
            " ".join(f"{v:.4f}" for v in row["per_fold"])]) + " |")
    if report["verdicts"]:
        lines += [""] + [f"- {v}" for v in report["verdicts"]]
    if report["incomplete"]:
        lines += ["", "Not compared (no run on every fold): " + ", ".join(
            f"{i['model']} (folds {', '.join(map(str, i['folds']))})" for i in report["incomplete"]) + "."]
    return "\n".join(lines) + "\n"


def render_cv_html(report: dict) -> str:
    """The cross-validation report as one self-contained HTML page (inline CSS and SVG)."""
    from nlpkit.report.render_html import CSS, _e, chart_diffs, chart_folds

    s, split = report["settings"], report["split"]
    k = split["folds"]
    # chart_diffs draws the leaderboard's rows: give it the fields it reads
    board = {"settings": s, "rows": [{**r, "label": r["model"], "name": r["model"]} for r in report["rows"]]}
    def verdict_class(d: dict) -> str:
        return "same" if not d["significant"] else ("better" if d["better"] else "worse")

    verdicts = [f'<li class="{verdict_class(r["diff"])}">{_e(r["verdict"])}</li>'
                for r in report["rows"] if r["verdict"]] or ["<li>Only one model: nothing to compare yet.</li>"]
    columns = ["#", "model", "kind", "mean ± sd", "Δ vs baseline [95% CI]", "p", "per fold"]
    head = "".join(f'<th class="{"l" if i in (1, 2) else ""}">{_e(c)}</th>' for i, c in enumerate(columns))
    body = []
    for rank, r in enumerate(report["rows"], 1):
        d = r["diff"]
        cells = [str(rank), r["model"], r["kind"], f"{r['mean']:.4f} ± {r['sd']:.4f}",
                 "baseline" if d is None else f"{format_signed(d['point'])} [{format_signed(d['lo'])}, {format_signed(d['hi'])}]",
                 "–" if d is None else format_p(d.get("p_holm", d["p_value"])), " ".join(f"{v:.4f}" for v in r["per_fold"])]
        body.append(f'<tr class="{"baseline" if r["is_baseline"] else ""}">' + "".join(
            f'<td class="{"l" if i in (1, 2) else ""}">{_e(c)}</td>' for i, c in enumerate(cells)) + "</tr>")
    incomplete = ""
    if report["incomplete"]:
        incomplete = ('<p class="meta">Not compared (no run on every fold): ' + "; ".join(
            f"{_e(i['model'])} (folds {', '.join(map(str, i['folds']))})" for i in report["incomplete"]) + "</p>")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>nlpkit cross-validation report: {_e(split['path'])}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>Cross-validation report: {_e(split['path'])}</h1>",
        (f'<p class="meta">{_e(split["task"])}-label · {k} folds · baseline <b>{_e(report["baseline"])}</b> · '
         f'{_e(s["metric_label"])} · split {_e(split["split_sha256"][:12])}</p>'),
        incomplete,
        "<h2>Verdicts</h2>", f'<ul class="verdicts">{"".join(verdicts)}</ul>',
        "<h2>Leaderboard</h2>",
        f'<table class="board"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>',
        "<h2>Charts</h2>", '<div class="grid">',
        f'<div class="card"><h3>{_e(s["metric_label"])} on each fold (bar: mean)</h3>{chart_folds(report)}</div>',
        (f'<div class="card"><h3>Difference to {_e(report["baseline"])} (95% interval)</h3>{chart_diffs(board)}'
         f'<p class="note">Green / red: significant at p &lt; 0.05; grey: no significant difference.</p></div>'),
        "</div>",
        ("<footer>Each fold is a separate test set. The per-fold differences to the baseline are tested with the "
         "corrected resampled t-test of Nadeau &amp; Bengio (2003), whose variance (1/K + n<sub>test</sub>/"
         f"n<sub>train</sub>) · s² allows for the overlap of the folds' training sets (n<sub>test</sub>/n<sub>train</sub> = "
         f"{split['test_over_train']:.3f}); K − 1 degrees of freedom. Generated by nlpkit report.</footer>"),
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def write_cv_report(report: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write report.html, report.md and report.json into ``out_dir`` (each atomically); the paths."""
    from nlpkit.report import write_report_files
    from nlpkit.report.render_text import render_json

    texts = {"report.html": render_cv_html(report), "report.md": render_cv_markdown(report),
             "report.json": render_json(report)}
    return write_report_files(texts, out_dir)

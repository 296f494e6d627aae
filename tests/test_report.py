"""`nlpkit report`: leaderboard, baseline choice, significance, per-label view, files, errors.

Runs are synthetic: predictions written straight into the registry with ``create_run`` (no model
is trained), so every expected figure is computed here from the same arrays.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from nlpkit.cli import app
from nlpkit.data import Dataset, write_split
from nlpkit.metrics import METRICS
from nlpkit.report import build_report, render_html, render_markdown
from nlpkit.report.compare import precision_recall_points
from nlpkit.runs import create_run

runner = CliRunner()


# --- fixtures: a split and runs with known predictions -----------------------------------------

def _dataset(y: np.ndarray, prefix: str, label_names: list[str], task: str) -> Dataset:
    n = y.shape[0]
    return Dataset(ids=[f"{prefix}{i}" for i in range(n)], texts=[f"text {prefix} {i}" for i in range(n)],
                   y=sp.csr_matrix(y.astype(np.uint8)), label_names=list(label_names), task=task,
                   extra=None, source=None)


def make_split(path: Path, *, n_train=400, n_test=300, n_labels=6, task="multi", seed=0):
    """A split folder with skewed label frequencies (label 0 most frequent)."""
    rng = np.random.default_rng(seed)
    names = [f"label{j}" for j in range(n_labels)]
    freq = np.linspace(0.5, 0.05, n_labels)

    def labels(n):
        if task == "single":
            y = np.zeros((n, n_labels), dtype=bool)
            y[np.arange(n), rng.choice(n_labels, size=n, p=freq / freq.sum())] = True
            return y
        y = rng.random((n, n_labels)) < freq
        y[np.arange(n), 0] |= ~y.any(axis=1)
        return y

    parts = {"train": _dataset(labels(n_train), "tr", names, task), "test": _dataset(labels(n_test), "te", names, task)}
    return write_split(path, parts, {"seed": seed})


def y_test(split) -> np.ndarray:
    return split.test.y.toarray().astype(bool)


def noisy(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """``y`` with a fraction ``rate`` of its cells flipped (multi-label)."""
    rng = np.random.default_rng(seed)
    return y ^ (rng.random(y.shape) < rate)


def noisy_single(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """One-hot ``y`` with a fraction ``rate`` of documents moved to another label."""
    rng = np.random.default_rng(seed)
    true = y.argmax(axis=1)
    wrong = rng.random(len(true)) < rate
    pred = np.where(wrong, (true + 1 + rng.integers(0, y.shape[1] - 1, len(true))) % y.shape[1], true)
    return np.eye(y.shape[1], dtype=bool)[pred]


def add_run(split, pred, *, kind="baseline", model="tfidf-lr", docs_per_s=1000.0, fit_seconds=2.0,
            size=12345, ids=None, label_names=None, split_sha256=None, test_sha256=None, scores=None, valid=None):
    """Record a complete run with these test predictions (columns in ``label_names`` order) and, with
    ``valid``, that value as every metric of its valid part."""
    pred = np.asarray(pred, dtype=bool)
    if scores is None:
        scores = np.where(pred, 0.75, 0.25).astype(np.float32)
    with create_run(kind, model) as w:
        w.write_json("run.json", {
            "config": {},
            "seed": 0,
            "data": {"split_dir": str(split.path), "split_sha256": split_sha256 or split.fingerprint,
                     "test_sha256": test_sha256 or split.test_fingerprint, "label_names": label_names or split.label_names,
                     "task": split.task},
            "timings": {"fit_seconds": fit_seconds, "predict_docs_per_s": docs_per_s},
            "model_size_bytes": size,
        })
        w.write_json("metrics.json", {"test": {}, **({} if valid is None else {"valid": {"metrics": {
            "micro_f1": valid, "macro_f1": valid, "accuracy": valid}}})})
        if kind != "pretrain":
            w.write_predictions(ids if ids is not None else split.test.ids, scores, pred)
    return w.run


@pytest.fixture
def split(tmp_path):
    return make_split(tmp_path / "split")


def row_of(report, name) -> dict:
    return next(r for r in report["rows"] if r["name"] == name)


# --- leaderboard and significance -----------------------------------------------------------

def test_better_model_wins_with_interval_and_small_p(split):
    y = y_test(split)
    base_pred, good_pred = noisy(y, 0.20, seed=1), noisy(y, 0.03, seed=2)
    base = add_run(split, base_pred, model="tfidf-lr", docs_per_s=4000)
    good = add_run(split, good_pred, kind="finetune", model="transformer", docs_per_s=100)

    report = build_report(split.path, n_boot=500, n_perm=2000)

    assert report["baseline"]["name"] == base.name
    rows = report["rows"]
    assert [r["name"] for r in rows] == [good.name, base.name]  # sorted by the headline metric
    assert [r["rank"] for r in rows] == [1, 2]
    g, b = row_of(report, good.name), row_of(report, base.name)
    assert b["is_baseline"] and not g["is_baseline"] and b["diff"] is None
    # point estimates are the metrics layer's values on the full test set
    micro = METRICS["micro_f1"]
    assert g["metric"]["point"] == pytest.approx(micro(y, good_pred))
    assert b["metric"]["point"] == pytest.approx(micro(y, base_pred))
    d = g["diff"]
    assert d["point"] == pytest.approx(micro(y, good_pred) - micro(y, base_pred))
    assert 0 < d["lo"] <= d["point"] <= d["hi"]
    assert d["p_value"] < 0.01 and d["significant"] and d["better"]
    # verdict: signed difference, interval, p and cost (4000 / 100 = 40x)
    assert g["verdict"].startswith(f"transformer: +{d['point']:.3f} micro-F1 [")
    assert "better than tfidf-lr" in g["verdict"]
    assert re.search(r", p (< 0\.001|= 0\.00\d), ", g["verdict"])
    assert g["cost_ratio"] == pytest.approx(40.0)
    assert "at 40× the prediction cost" in g["verdict"]
    assert report["verdicts"] == [g["verdict"]]
    # secondary metrics for a multi-label split
    assert set(g["secondary"]) == {"macro_f1", "subset_accuracy"}
    assert g["secondary"]["macro_f1"] == pytest.approx(METRICS["macro_f1"](y, good_pred))
    assert g["fit_seconds"] == 2.0 and g["predict_docs_per_s"] == 100 and g["model_size_bytes"] == 12345


def test_worse_and_cheaper_model_verdict(split):
    y = y_test(split)
    add_run(split, noisy(y, 0.03, seed=1), model="tfidf-lr", docs_per_s=1000)
    worse = add_run(split, noisy(y, 0.25, seed=2), model="fasttext", docs_per_s=4000)
    report = build_report(split.path, baseline="tfidf-lr", n_boot=300, n_perm=1000)
    w = row_of(report, worse.name)
    assert w["diff"]["hi"] < 0 and w["diff"]["significant"] and not w["diff"]["better"]
    assert "worse than tfidf-lr" in w["verdict"] and "4× cheaper to predict" in w["verdict"]
    assert w["verdict"].startswith("fasttext: −0.")


def test_identical_models_no_significant_difference(split):
    y = y_test(split)
    pred = noisy(y, 0.1, seed=3)
    base = add_run(split, pred, model="tfidf-lr")
    twin = add_run(split, pred, kind="finetune", model="transformer", docs_per_s=1000)
    report = build_report(split.path, n_boot=300, n_perm=1000)
    # one set of resampled documents for all runs: identical predictions, identical intervals
    assert row_of(report, twin.name)["metric"] == row_of(report, base.name)["metric"]
    d = row_of(report, twin.name)["diff"]
    assert d["point"] == 0 and d["lo"] == 0 and d["hi"] == 0
    assert d["p_value"] > 0.5 and not d["significant"]
    verdict = row_of(report, twin.name)["verdict"]
    assert "no significant difference from tfidf-lr" in verdict and "p = 1.000" in verdict
    assert "at about the same prediction cost" in verdict


def test_intervals_contain_the_point_estimate(split):
    y = y_test(split)
    for i, rate in enumerate((0.02, 0.08, 0.15, 0.3)):
        add_run(split, noisy(y, rate, seed=10 + i), model=f"m{i}")
    for metric in ("micro_f1", "macro_f1", "subset_accuracy"):
        report = build_report(split.path, metric=metric, baseline="m2", n_boot=200, n_perm=200)
        for row in report["rows"]:
            m = row["metric"]
            assert m["lo"] <= m["point"] <= m["hi"], (metric, row["name"])
            assert m["hi"] > m["lo"]  # 300 noisy documents: the interval has width
            if row["diff"]:
                assert row["diff"]["lo"] <= row["diff"]["point"] <= row["diff"]["hi"]


def test_macro_f1_intervals_contain_the_point_with_rare_labels(tmp_path):
    # 80 test documents, 30 of 34 labels with one or two of them, mostly predicted right: the shape
    # of a small Reuters split, where resamples that leave a rare label out pulled the percentile
    # interval below the point ("0.421 [0.326, 0.414]").
    rng = np.random.default_rng(5)
    n, n_common, n_rare = 80, 4, 30
    names = [f"label{j:02d}" for j in range(n_common + n_rare)]

    def labels(n_docs):
        y = np.zeros((n_docs, len(names)), dtype=bool)
        y[:, :n_common] = rng.random((n_docs, n_common)) < [0.4, 0.3, 0.2, 0.1]
        for j in range(n_common, len(names)):
            y[rng.choice(n_docs, size=1 + j % 2, replace=False), j] = True
        return y

    split = write_split(tmp_path / "rare", {"train": _dataset(labels(200), "tr", names, "multi"),
                                            "test": _dataset(labels(n), "te", names, "multi")}, {"seed": 0})
    y = y_test(split)
    good = y ^ (rng.random(y.shape) < 0.01)
    add_run(split, good, model="tfidf-lr")
    add_run(split, np.where(rng.random(y.shape) < 0.3, False, good), model="word2vec")
    add_run(split, np.tile(y.sum(axis=0) == y.sum(axis=0).max(), (n, 1)), model="majority")
    for seed in range(3):
        report = build_report(split.path, metric="macro_f1", n_boot=1000, n_perm=200, seed=seed)
        for row in report["rows"]:
            m = row["metric"]
            assert m["lo"] <= m["point"] <= m["hi"], (seed, row["label"], m)
            if row["diff"]:
                d = row["diff"]
                assert d["lo"] <= d["point"] <= d["hi"], (seed, row["label"], d)


def test_lower_is_better_metric_sorts_ascending(split):
    y = y_test(split)
    add_run(split, noisy(y, 0.2, seed=1), model="tfidf-lr")
    good = add_run(split, noisy(y, 0.02, seed=2), model="transformer", kind="finetune")
    report = build_report(split.path, metric="hamming_loss", n_boot=200, n_perm=500)
    assert report["rows"][0]["name"] == good.name
    d = row_of(report, good.name)["diff"]
    assert d["point"] < 0 and d["better"] and d["significant"]
    assert "better than" in row_of(report, good.name)["verdict"]


def test_single_label_split_reports_accuracy(tmp_path):
    split = make_split(tmp_path / "single", task="single", n_labels=4)
    y = y_test(split)
    add_run(split, noisy_single(y, 0.3, seed=1), model="tfidf-lr")
    ft = add_run(split, noisy_single(y, 0.1, seed=2), kind="finetune", model="transformer")
    report = build_report(split.path, metric="accuracy", n_boot=200, n_perm=500)
    assert report["split"]["task"] == "single"
    row = row_of(report, ft.name)
    assert row["metric"]["point"] == pytest.approx(np.mean(noisy_single(y, 0.1, seed=2).argmax(1) == y.argmax(1)))
    assert set(row["secondary"]) == {"micro_f1", "macro_f1"}
    assert "accuracy" in render_markdown(report)


def test_duplicate_models_get_the_run_suffix(split):
    y = y_test(split)
    a = add_run(split, noisy(y, 0.1, seed=1), model="tfidf-lr")
    b = add_run(split, noisy(y, 0.1, seed=2), model="tfidf-lr")
    report = build_report(split.path, baseline=a.name, n_boot=100, n_perm=100)
    labels = {r["name"]: r["label"] for r in report["rows"]}
    assert labels[a.name] == f"tfidf-lr ({a.name[-6:]})" and labels[b.name] == f"tfidf-lr ({b.name[-6:]})"


# --- baseline selection -----------------------------------------------------------------------

def test_best_baseline_skips_majority_and_finetune_runs(split):
    y = y_test(split)
    # majority made better than the real baselines on purpose: the rule still skips it
    add_run(split, noisy(y, 0.01, seed=1), model="majority", valid=0.99)
    add_run(split, noisy(y, 0.25, seed=2), model="tfidf-lr", valid=0.70)
    best = add_run(split, noisy(y, 0.10, seed=3), model="fasttext", valid=0.85)
    add_run(split, noisy(y, 0.02, seed=4), kind="finetune", model="transformer", valid=0.95)
    report = build_report(split.path, n_boot=100, n_perm=100)
    assert report["baseline"] == {"name": best.name, "label": "fasttext",
                                  "chosen_by": "best valid micro_f1 among baseline runs", "valid_metric": 0.85}
    assert [r["name"] for r in report["rows"] if r["is_baseline"]] == [best.name]


def test_best_baseline_is_chosen_on_valid_never_on_test(split):
    # tfidf-lr is far better on test, fastText better on valid: the baseline is the one valid chose
    y = y_test(split)
    on_test = add_run(split, noisy(y, 0.02, seed=1), model="tfidf-lr", valid=0.80)
    on_valid = add_run(split, noisy(y, 0.30, seed=2), model="fasttext", valid=0.81)
    report = build_report(split.path, n_boot=100, n_perm=100)
    assert report["baseline"]["name"] == on_valid.name
    assert row_of(report, on_test.name)["metric"]["point"] > row_of(report, on_valid.name)["metric"]["point"]
    assert report["settings"]["baseline_requested"] == "best-baseline"
    named = build_report(split.path, baseline=on_test.name, n_boot=100, n_perm=100)
    assert named["baseline"]["name"] == on_test.name and named["baseline"]["chosen_by"] == "named with --baseline"


def test_best_baseline_falls_back_to_majority(split):
    y = y_test(split)
    maj = add_run(split, noisy(y, 0.3, seed=1), model="majority")
    add_run(split, noisy(y, 0.05, seed=2), kind="finetune", model="transformer")
    assert build_report(split.path, n_boot=100, n_perm=100)["baseline"]["name"] == maj.name


def test_explicit_baseline_by_name_path_or_model(split):
    y = y_test(split)
    lr = add_run(split, noisy(y, 0.2, seed=1), model="tfidf-lr")
    ft = add_run(split, noisy(y, 0.05, seed=2), kind="finetune", model="transformer")
    for given in (ft.name, str(ft.path), "transformer"):
        report = build_report(split.path, baseline=given, n_boot=100, n_perm=100)
        assert report["baseline"]["name"] == ft.name
        assert row_of(report, lr.name)["diff"]["point"] < 0


def test_cli_unknown_baseline_lists_available_runs(split):
    y = y_test(split)
    lr = add_run(split, noisy(y, 0.2, seed=1), model="tfidf-lr")
    ft = add_run(split, noisy(y, 0.05, seed=2), kind="finetune", model="transformer")
    result = runner.invoke(app, ["report", str(split.path), "--baseline", "no-such-run", "--n-boot", "50"])
    assert result.exit_code == 1
    assert "Error: unknown baseline run 'no-such-run'" in result.output
    assert lr.name in result.output and ft.name in result.output
    assert "Traceback" not in result.output
    assert not (split.path / "report").exists()  # nothing half-written


def test_cli_ambiguous_model_name_as_baseline(split):
    y = y_test(split)
    add_run(split, noisy(y, 0.2, seed=1), model="tfidf-lr")
    add_run(split, noisy(y, 0.1, seed=2), model="tfidf-lr")
    result = runner.invoke(app, ["report", str(split.path), "--baseline", "tfidf-lr"])
    assert result.exit_code == 1
    assert "matches several runs" in result.output and "pass one run name" in result.output


def test_cli_baseline_from_another_split_is_refused(split, tmp_path):
    other = make_split(tmp_path / "other", seed=7)
    mine = add_run(split, noisy(y_test(split), 0.1, seed=1), model="tfidf-lr")
    foreign = add_run(other, noisy(y_test(other), 0.1, seed=2), model="fasttext")
    result = runner.invoke(app, ["report", str(split.path), "--baseline", foreign.name])
    assert result.exit_code == 1
    assert f"baseline run {foreign.name} was made on another split" in result.output
    assert mine.name in result.output  # what to pick instead
    # without --baseline the foreign run is simply not listed
    report = build_report(split.path, n_boot=50, n_perm=50)
    assert [r["name"] for r in report["rows"]] == [mine.name]


def test_cli_pretrain_run_as_baseline_is_refused(split):
    add_run(split, noisy(y_test(split), 0.1, seed=1), model="tfidf-lr")
    pre = add_run(split, None, kind="pretrain", model="mlm")
    result = runner.invoke(app, ["report", str(split.path), "--baseline", pre.name])
    assert result.exit_code == 1
    assert "is a pretrain run, not a classifier" in result.output


def test_cli_no_baseline_run(split):
    add_run(split, noisy(y_test(split), 0.1, seed=1), kind="finetune", model="transformer")
    result = runner.invoke(app, ["report", str(split.path)])
    assert result.exit_code == 1
    assert f"no baseline run for split {split.path}" in result.output and "--baseline RUN" in result.output


# --- which runs are compared ------------------------------------------------------------------

def test_pretrain_runs_are_left_out_with_a_warning(split):
    lr = add_run(split, noisy(y_test(split), 0.1, seed=1), model="tfidf-lr")
    pre = add_run(split, None, kind="pretrain", model="mlm")
    report = build_report(split.path, n_boot=50, n_perm=50)
    assert [r["name"] for r in report["rows"]] == [lr.name]
    assert report["excluded"] == [{"name": pre.name, "reason": "pretrain run: not a classifier"}]
    result = runner.invoke(app, ["report", str(split.path), "--n-boot", "50", "--n-perm", "50"])
    assert result.exit_code == 0
    assert f"not compared: {pre.name}" in result.output


def test_cli_no_runs_for_the_split(split, tmp_path):
    other = make_split(tmp_path / "other", seed=7)
    add_run(other, noisy(y_test(other), 0.1, seed=1))  # a run, but for another split
    result = runner.invoke(app, ["report", str(split.path)])
    assert result.exit_code == 1
    assert f"no runs for split {split.path}" in result.output
    assert f"run `nlpkit baseline {split.path}` first" in result.output


def test_cli_missing_split_folder(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "split folder not found" in result.output


def test_predictions_with_other_ids_are_an_error(split):
    y = y_test(split)
    add_run(split, noisy(y, 0.1, seed=1), model="tfidf-lr")
    ids = list(split.test.ids)
    ids[5] = "not-a-test-id"
    bad = add_run(split, noisy(y, 0.1, seed=2), model="fasttext", ids=ids)
    result = runner.invoke(app, ["report", str(split.path)])
    assert result.exit_code == 1
    assert f"run {bad.name}" in result.output and "do not match the 300 test documents" in result.output
    assert "'te5' has no prediction" in result.output


def test_runs_are_aligned_by_id_and_label_name(split):
    """A run that stored documents and labels in another order scores exactly like the original."""
    y = y_test(split)
    pred = noisy(y, 0.1, seed=1)
    ref = add_run(split, pred, model="tfidf-lr")
    doc_order = np.random.default_rng(0).permutation(len(y))
    label_order = list(range(y.shape[1]))[::-1]
    shuffled = add_run(split, pred[doc_order][:, label_order], model="fasttext",
                       ids=[split.test.ids[i] for i in doc_order],
                       label_names=[split.label_names[j] for j in label_order])
    report = build_report(split.path, baseline=ref.name, n_boot=100, n_perm=100)
    assert row_of(report, shuffled.name)["metric"] == row_of(report, ref.name)["metric"]
    assert row_of(report, shuffled.name)["diff"]["point"] == 0


def test_run_with_unknown_label_is_an_error(split):
    y = y_test(split)
    add_run(split, noisy(y, 0.1, seed=1), model="tfidf-lr")
    names = list(split.label_names)
    names[0] = "mystery"
    add_run(split, noisy(y, 0.1, seed=2), model="fasttext", label_names=names)
    result = runner.invoke(app, ["report", str(split.path)])
    assert result.exit_code == 1 and "predicts label 'mystery'" in result.output


# --- per-label view and curves ----------------------------------------------------------------

def test_per_label_view_finds_where_models_differ(split):
    y = y_test(split)
    a_pred = y.copy()
    b_pred = y.copy()
    b_pred[:, 3] = ~y[:, 3]  # model b gets label3 entirely wrong
    a = add_run(split, a_pred, model="tfidf-lr")
    b = add_run(split, b_pred, model="fasttext")
    report = build_report(split.path, baseline=a.name, n_boot=50, n_perm=50, top_labels=2)
    pl = report["per_label"]
    assert pl["most_different"][0] == "label3"
    by_label = {d["label"]: d for d in pl["labels"]}
    assert by_label["label3"]["f1"][a.name] == 1.0 and by_label["label3"]["f1"][b.name] == 0.0
    assert by_label["label3"]["spread"] == 1.0
    assert by_label["label0"]["spread"] == 0.0
    for j, name in enumerate(split.label_names):
        assert by_label[name]["test_support"] == int(y[:, j].sum())
        assert by_label[name]["train_support"] == int(split.train.y[:, j].sum())
    assert pl["most_frequent"] == ["label0", "label1"]  # frequencies fall with the label index
    html = render_html(report)
    assert "label3 ◆" in html


def test_precision_recall_points_match_sklearn():
    from sklearn.metrics import precision_recall_curve

    rng = np.random.default_rng(0)
    truth = rng.random(2000) < 0.2
    scores = np.round(rng.random(2000), 2)  # ties on purpose
    precision, recall = precision_recall_points(truth, scores)
    ref_p, ref_r, _ = precision_recall_curve(truth, scores)
    np.testing.assert_allclose(precision, ref_p)
    np.testing.assert_allclose(recall, ref_r)


def test_pr_curves_and_average_precision(split):
    from sklearn.metrics import average_precision_score

    y = y_test(split)
    rng = np.random.default_rng(4)
    scores = np.clip(y * 0.5 + rng.random(y.shape) * 0.6, 0, 1).astype(np.float32)
    run = add_run(split, scores >= 0.5, scores=scores, model="tfidf-lr")
    curve = build_report(split.path, n_boot=50, n_perm=50)["pr_curves"][run.name]
    assert curve["average_precision"] == pytest.approx(average_precision_score(y.ravel(), scores.ravel()))
    assert len(curve["recall"]) == len(curve["precision"]) <= 250
    assert curve["recall"][-1] == 0 and curve["precision"][-1] == 1


# --- files, formats, determinism --------------------------------------------------------------

@pytest.fixture
def two_runs(split):
    y = y_test(split)
    base = add_run(split, noisy(y, 0.2, seed=1), model="tfidf-lr", docs_per_s=5000)
    ft = add_run(split, noisy(y, 0.05, seed=2), kind="finetune", model="transformer", docs_per_s=50)
    return base, ft


def test_cli_writes_md_json_html_and_prints_table(split, two_runs, tmp_path):
    base, ft = two_runs
    out = tmp_path / "out"
    result = runner.invoke(app, ["report", str(split.path), "--out", str(out), "--n-boot", "200", "--n-perm", "500"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]  # no temp files
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["baseline"]["name"] == base.name
    assert [r["name"] for r in report["rows"]] == [ft.name, base.name]
    verdict = row_of(report, ft.name)["verdict"]
    # stdout: the table, the verdicts, the path to the html last
    assert "tfidf-lr (baseline)" in result.stdout and "transformer" in result.stdout
    assert verdict in result.stdout
    assert result.stdout.rstrip().splitlines()[-1] == f"Report: {out / 'report.html'}"
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "| # | model | kind | micro-F1 [95% CI] |" in md
    assert f"- {verdict}" in md
    assert "at 100× the prediction cost" in verdict


def test_default_out_is_split_report_folder(split, two_runs):
    result = runner.invoke(app, ["report", str(split.path), "--format", "json", "--n-boot", "100", "--n-perm", "100"])
    assert result.exit_code == 0, result.output
    written = (split.path / "report" / "report.json").read_text(encoding="utf-8")
    assert json.loads(result.stdout) == json.loads(written)


def test_json_flag_prints_report_json_as_in_the_other_commands(split, two_runs):
    result = runner.invoke(app, ["report", str(split.path), "--json", "--n-boot", "100", "--n-perm", "100"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads((split.path / "report" / "report.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("fmt, marker", [("md", "## Leaderboard"), ("html", "<!DOCTYPE html>")])
def test_format_selects_stdout(split, two_runs, tmp_path, fmt, marker):
    out = tmp_path / "o"
    result = runner.invoke(app, ["report", str(split.path), "--out", str(out), "--format", fmt,
                                 "--n-boot", "100", "--n-perm", "100"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(marker) or result.stdout.startswith("# Report")
    assert marker in result.stdout
    assert result.stdout == (out / f"report.{fmt}").read_text(encoding="utf-8")


def test_same_seed_same_report_json(split, two_runs, tmp_path):
    def run(seed, name):
        out = tmp_path / name
        args = ["report", str(split.path), "--out", str(out), "--seed", str(seed), "--n-boot", "300", "--n-perm", "300"]
        assert runner.invoke(app, args).exit_code == 0
        return (out / "report.json").read_bytes(), (out / "report.html").read_bytes()

    first, again, other = run(3, "a"), run(3, "b"), run(4, "c")
    assert first == again
    r3, r4 = json.loads(first[0]), json.loads(other[0])
    assert r3["settings"]["seed"] == 3 and r4["settings"]["seed"] == 4
    assert [r["metric"] for r in r3["rows"]] != [r["metric"] for r in r4["rows"]]  # intervals depend on the seed


def test_html_is_self_contained_with_charts(split, two_runs, tmp_path):
    out = tmp_path / "o"
    assert runner.invoke(app, ["report", str(split.path), "--out", str(out), "--n-boot", "100",
                               "--n-perm", "100"]).exit_code == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # nothing fetched from anywhere: no external src/href, no stylesheet links, no CSS url()/@import
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "<link" not in html and "<script" not in html and "url(" not in html and "@import" not in html
    assert "http://" not in html and "https://" not in html
    assert html.count("<svg") == 5  # metric bars, differences, cost, PR curves, heatmap
    for title in ("with 95% interval", "Difference to tfidf-lr", "Quality against prediction cost",
                  "Precision–recall", "Per-label F1"):
        assert title in html
    assert "<polyline" in html  # the PR curves are drawn


def test_cli_out_is_a_file(split, two_runs, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    result = runner.invoke(app, ["report", str(split.path), "--out", str(target), "--n-boot", "50"])
    assert result.exit_code == 1
    assert f"--out {target} is a file" in result.output
    assert target.read_text() == "keep me"


def _folder_state(folder: Path) -> dict[str, bytes | None]:
    """Every entry of ``folder`` (hidden ones too): file bytes, or None for a sub-folder."""
    return {p.name: (p.read_bytes() if p.is_file() else None) for p in folder.iterdir()}


def test_cli_report_files_are_replaced_as_a_set(split, two_runs, tmp_path):
    # report.md cannot be replaced (a folder took its name): nothing is, report.html included.
    out = tmp_path / "r"
    args = ["report", str(split.path), "--out", str(out), "--n-boot", "50", "--n-perm", "50"]
    assert runner.invoke(app, [*args, "--seed", "0"]).exit_code == 0
    (out / "notes.txt").write_text("mine")  # --out may hold other files: they stay
    (out / "report.md").unlink()
    (out / "report.md" / "x").mkdir(parents=True)
    before = _folder_state(out)
    result = runner.invoke(app, [*args, "--seed", "7"])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: --out {out}: {out / 'report.md'} is a folder, not a report file; "
                                     "remove it or pass another --out folder.")
    assert _folder_state(out) == before
    (out / "report.md" / "x").rmdir()
    (out / "report.md").rmdir()
    assert runner.invoke(app, [*args, "--seed", "7"]).exit_code == 0
    assert sorted(_folder_state(out)) == ["notes.txt", "report.html", "report.json", "report.md"]
    assert json.loads((out / "report.json").read_text())["settings"]["seed"] == 7
    assert (out / "notes.txt").read_text() == "mine"


def _fail_after(monkeypatch, name: str, calls: int, exc: BaseException):
    """Make ``nlpkit.report``'s ``name`` (os.replace, or the file writer) raise ``exc`` on call ``calls``."""
    import nlpkit.report as report_pkg

    target = report_pkg.os if name == "replace" else report_pkg
    real = getattr(target, name)
    count = {"n": 0}

    def failing(*a, **kw):
        count["n"] += 1
        if count["n"] == calls:
            raise exc
        return real(*a, **kw)

    monkeypatch.setattr(target, name, failing)
    return count


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_interrupt_or_error_midway_leaves_the_previous_report(split, two_runs, tmp_path, monkeypatch, exc):
    from nlpkit.errors import NlpkitError
    from nlpkit.report import write_report

    out = tmp_path / "r"
    write_report(build_report(split.path, n_boot=50, n_perm=50, seed=0), out)
    (out / "notes.txt").write_text("mine")
    before = _folder_state(out)
    newer = build_report(split.path, n_boot=50, n_perm=50, seed=7)
    count = _fail_after(monkeypatch, "replace", 3, exc)  # after report.html and report.md are in place
    with pytest.raises(KeyboardInterrupt if isinstance(exc, KeyboardInterrupt) else NlpkitError):
        write_report(newer, out)
    assert count["n"] >= 3
    assert _folder_state(out) == before  # the previous set, no temporary folder


def test_write_failure_on_a_new_out_folder_leaves_nothing(split, two_runs, tmp_path):
    # A file-size limit below report.html's size fails the first write, as a full disk does; the
    # command must not leave an empty (or partly written) --out folder, nor the parents it made.
    import signal
    import subprocess

    resource = pytest.importorskip("resource")  # POSIX only

    def limit():  # in the child: a write past 4 KB fails with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = tmp_path / "new" / "deeper" / "report"
    result = subprocess.run(
        [sys.executable, "-c", "from nlpkit.cli import main; main()", "report", str(split.path), "--out", str(out),
         "--n-boot", "50", "--n-perm", "50"],
        capture_output=True, text=True, preexec_fn=limit, check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (f"Error: cannot write the report into {out}: File too large; "
                                     "free some space or pass another --out folder.")
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs", "split"]  # no folder, no temporary left


@pytest.mark.parametrize("args, message", [
    (["--metric", "f2"], "unknown metric 'f2'; use one of:"),
    (["--format", "pdf"], "unknown --format 'pdf'; use one of: table, md, html, json"),
    (["--n-boot", "0"], "--n-boot must be at least 1"),
    (["--n-perm", "0"], "--n-perm must be at least 1"),
    (["--top-labels", "0"], "--top-labels must be at least 1"),
    (["--json", "--format", "md"], "--json prints JSON but --format asks for md; give one of them."),
])
def test_cli_bad_options(split, two_runs, args, message):
    result = runner.invoke(app, ["report", str(split.path), *args])
    assert result.exit_code == 1
    assert message in result.output
    assert not (split.path / "report").exists()


def test_cli_module_has_no_heavy_imports():
    import subprocess
    import sys

    code = ("import sys, nlpkit.cli.report; "
            "print(sorted(m for m in ('torch', 'transformers', 'sklearn', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_reuters_sized_report(tmp_path):
    """3,019 test documents x 90 labels, five runs (its speed is measured in bench/core_bench.py)."""
    split = make_split(tmp_path / "big", n_train=2000, n_test=3019, n_labels=90, seed=1)
    y = y_test(split)
    rng = np.random.default_rng(0)
    for i, (model, rate) in enumerate([("majority", 0.3), ("tfidf-lr", 0.05), ("fasttext", 0.06),
                                       ("transformer", 0.03), ("transformer", 0.035)]):
        scores = np.clip(np.where(noisy(y, rate, seed=i), 0.8, 0.2) + rng.normal(0, 0.1, y.shape), 0, 1)
        add_run(split, scores >= 0.5, scores=scores.astype(np.float32), model=model,
                kind="finetune" if model == "transformer" else "baseline")
    for metric in ("micro_f1", "macro_f1"):
        report = build_report(split.path, metric=metric)
        assert render_html(report) and render_markdown(report)
        assert len(report["rows"]) == 5
        assert [r["model"] for r in report["rows"]][-1] == "majority"


def test_single_run_report(split, tmp_path):
    only = add_run(split, noisy(y_test(split), 0.1, seed=1), model="tfidf-lr")
    out = tmp_path / "o"
    result = runner.invoke(app, ["report", str(split.path), "--out", str(out), "--n-boot", "100"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in report["rows"]] == [only.name] and report["verdicts"] == []
    assert "Only one run: nothing to compare yet." in result.stdout
    assert "Only one run" in (out / "report.md").read_text(encoding="utf-8")


def test_model_sizes_are_decimal_units_labelled_as_such(split):
    # nlpkit finetune printed "model size 3.4 MB" (decimal) where the report said "3.2 MB" (1,024-based).
    from nlpkit.report.render_text import fmt_bytes

    assert [fmt_bytes(n) for n in (None, 0, 999, 1000, 12345, 999_960, 3_400_000, 3 * 1024 ** 2, 2.5e9)] == [
        "–", "0 B", "999 B", "1.0 kB", "12.3 kB", "1.0 MB", "3.4 MB", "3.1 MB", "2.5 GB"]
    add_run(split, noisy(y_test(split), 0.1, seed=1), model="tfidf-lr", size=3_400_000)
    report = build_report(split.path, n_boot=50, n_perm=50)
    assert "| 3.4 MB |" in render_markdown(report)
    assert "model 3.4 MB" in render_html(report)


def test_cost_phrases():
    from nlpkit.report.compare import format_ratio

    assert format_ratio(4.5) == "4.5×" and format_ratio(40.0) == "40×" and format_ratio(1013.7) == "1,014×"
    row = {"label": "m", "cost_ratio": None,
           "diff": {"point": 0.01, "lo": 0.005, "hi": 0.02, "p_value": 0.01, "significant": True, "better": True}}
    from nlpkit.report import verdict

    assert verdict(row, "b", "micro_f1").endswith("prediction cost unknown")
    row["cost_ratio"] = 0.25
    assert verdict(row, "b", "micro_f1").endswith("4× cheaper to predict")
    row["cost_ratio"] = 1.05
    assert verdict(row, "b", "micro_f1").endswith("at about the same prediction cost")


def test_run_names_are_escaped_in_html_and_markdown(split):
    y = y_test(split)
    add_run(split, noisy(y, 0.1, seed=1), model="tfidf-lr")
    add_run(split, noisy(y, 0.1, seed=2), kind="finetune", model="<b>x|y</b>")
    report = build_report(split.path, n_boot=50, n_perm=50)
    html = render_html(report)
    assert "&lt;b&gt;x|y&lt;/b&gt;" in html and "<b>x|y</b>" not in html
    assert "<b>x\\|y</b>" in render_markdown(report)  # a pipe would break the table row


def test_kfold_split_and_label_absent_from_test(tmp_path):
    """Train support summed over folds; a label nobody predicts and no test document has is blank."""
    rng = np.random.default_rng(5)
    names = ["a", "b", "rare"]

    def part(n, prefix, with_rare):
        y = rng.random((n, 3)) < [0.5, 0.4, 0.2 if with_rare else 0.0]
        y[:, 0] |= ~y.any(axis=1)
        return _dataset(y, prefix, names, "multi")

    folds = {"fold0": part(50, "f0", True), "fold1": part(50, "f1", True)}
    split = write_split(tmp_path / "kfold", {**folds, "test": part(120, "te", False)}, {})
    y = y_test(split)
    pred = noisy(y, 0.1, seed=1)
    pred[:, 2] = False
    add_run(split, pred, model="tfidf-lr")
    other = pred.copy()
    other[:, 0] = ~other[:, 0]
    add_run(split, other, model="fasttext")
    report = build_report(split.path, baseline="tfidf-lr", n_boot=50, n_perm=50)
    rare = next(d for d in report["per_label"]["labels"] if d["label"] == "rare")
    assert rare["test_support"] == 0
    assert rare["train_support"] == sum(int(ds.y[:, 2].sum()) for ds in folds.values()) > 0
    assert set(rare["f1"].values()) == {None} and rare["spread"] == 0.0
    assert report["per_label"]["most_different"][0] == "a"
    assert ">–</text>" in render_html(report)  # a blank heatmap cell


def test_cli_baseline_folder_that_is_not_a_run(split, tmp_path):
    add_run(split, noisy(y_test(split), 0.1, seed=1), model="tfidf-lr")
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    result = runner.invoke(app, ["report", str(split.path), "--baseline", str(folder)])
    assert result.exit_code == 1
    assert f"not a complete run: {folder} has no run.json" in result.output


def test_cli_run_without_predictions(split):
    add_run(split, noisy(y_test(split), 0.1, seed=1), model="tfidf-lr")
    broken = add_run(split, noisy(y_test(split), 0.1, seed=2), model="fasttext")
    (broken.path / "predictions.npz").unlink()
    result = runner.invoke(app, ["report", str(split.path)])
    assert result.exit_code == 1
    assert f"run {broken.name} has no predictions.npz" in result.output
    assert f"Re-run that model, or delete {broken.path}." in result.output


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04"])
def test_cli_run_with_damaged_predictions(split, tmp_path, damage):
    # An empty file used to end in a bare "Aborted." (EOFError), a truncated one in a BadZipFile traceback.
    add_run(split, noisy(y_test(split), 0.1, seed=1), model="tfidf-lr")
    broken = add_run(split, noisy(y_test(split), 0.1, seed=2), model="fasttext")
    (broken.path / "predictions.npz").write_bytes(damage)
    out = tmp_path / "r"
    result = runner.invoke(app, ["report", str(split.path), "--out", str(out)])
    assert result.exit_code == 1
    reason = "empty file" if not damage else "File is not a zip file"
    assert result.output == (f"Error: run {broken.name}: cannot read {broken.path / 'predictions.npz'} ({reason}); the "
                             f"file is damaged. Re-run that model, or delete {broken.path}.\n")
    assert not out.exists()


def test_report_on_runs_recorded_by_the_experiment(multi_split, fake_registry):
    """Runs written by the real pipeline (fit → tune → predict → record), not by hand."""
    from fake_model import KeywordClassifier

    from nlpkit.experiment import run_experiment
    from nlpkit.models.majority import MajorityClassifier

    floor = run_experiment(MajorityClassifier(), multi_split, kind="baseline", config={}, seed=0)
    keyword = run_experiment(KeywordClassifier(), multi_split, kind="finetune", config={}, seed=0)
    report = build_report(multi_split.path, n_boot=100, n_perm=100)
    assert report["baseline"]["name"] == floor.name  # the only baseline, so the majority floor is used
    row = row_of(report, keyword.name)
    assert row["fit_seconds"] == keyword.info["timings"]["fit_seconds"]
    assert row["predict_docs_per_s"] == keyword.info["timings"]["predict_docs_per_s"]
    assert row["model_size_bytes"] == keyword.info["model_size_bytes"] > 0
    _, _, pred = keyword.predictions()
    assert row["metric"]["point"] == pytest.approx(METRICS["micro_f1"](multi_split.test.y, pred))
    assert row["verdict"].startswith("fake-keyword: ")


def test_run_with_another_test_fingerprint_is_not_compared(split):
    mine = add_run(split, noisy(y_test(split), 0.1, seed=1), model="tfidf-lr")
    odd = add_run(split, noisy(y_test(split), 0.1, seed=2), model="fasttext", test_sha256="0" * 64)
    report = build_report(split.path, n_boot=50, n_perm=50)
    assert [r["name"] for r in report["rows"]] == [mine.name]
    assert report["excluded"] == [{"name": odd.name, "reason": "test part fingerprint differs from the split's"}]
    result = runner.invoke(app, ["report", str(split.path), "--baseline", odd.name])
    assert result.exit_code == 1
    assert f"baseline run {odd.name} was scored on a different test part" in result.output


# --- cross-validation report (k-fold split without a test part) -------------------------------------

def test_corrected_resampled_t_matches_the_formula():
    from scipy import stats

    from nlpkit.report.cv import corrected_resampled_t

    diffs = [0.01, 0.03, 0.02, 0.04, 0.00]
    got = corrected_resampled_t(diffs, test_over_train=0.25)
    se = ((1 / 5 + 0.25) * np.var(diffs, ddof=1)) ** 0.5  # Nadeau & Bengio: 1/K + n_test/n_train
    assert got["point"] == pytest.approx(0.02)
    assert got["p_value"] == pytest.approx(2 * stats.t.sf(0.02 / se, 4))
    assert got["hi"] - got["point"] == pytest.approx(stats.t.ppf(0.975, 4) * se)
    # the plain t-test (variance s^2 / K) would call the same differences significant
    assert 2 * stats.t.sf(0.02 / (np.var(diffs, ddof=1) / 5) ** 0.5, 4) < 0.05 < got["p_value"]
    assert corrected_resampled_t([0.0, 0.0, 0.0], 0.5)["p_value"] == 1.0
    assert corrected_resampled_t([0.1, 0.1], 0.5) == {"point": 0.1, "lo": 0.1, "hi": 0.1, "p_value": 0.0}


@pytest.fixture
def cv_split(tmp_path, runs_dir):
    from nlpkit.data import read_dataset

    ds = read_dataset(Path(__file__).resolve().parent.parent / "data" / "agnews_sample.jsonl")
    idx = np.arange(600)
    split = write_split(tmp_path / "kfold", {f"fold{k}": ds.subset(idx[k::3]) for k in range(3)}, {})
    for args in (["-m", "majority", "-m", "tfidf-lr"], ["-m", "majority", "--fold", "0"], ["-m", "fasttext", "--fold", "1"]):
        result = runner.invoke(app, ["baseline", str(split.path), *args, "--json"])
        assert result.exit_code == 0, result.output
    return split


def test_cli_cross_validation_report_compares_models_run_on_every_fold(cv_split):
    from nlpkit.report.cv import corrected_resampled_t

    result = runner.invoke(app, ["report", str(cv_split.path), "--metric", "accuracy", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["kind"] == "cross-validation" and report["baseline"] == "tfidf-lr"
    assert [r["model"] for r in report["rows"]] == ["tfidf-lr", "majority"]
    assert report["incomplete"] == [{"model": "fasttext", "folds": [1]}]
    assert len(report["ignored_older_runs"]) == 1  # majority ran twice on fold 0: the newer run counts
    tfidf, majority = report["rows"]
    assert len(tfidf["per_fold"]) == 3 and tfidf["mean"] == pytest.approx(np.mean(tfidf["per_fold"]))
    diffs = [m - t for m, t in zip(majority["per_fold"], tfidf["per_fold"])]
    expected = corrected_resampled_t(diffs, report["split"]["test_over_train"])
    assert majority["diff"]["point"] == pytest.approx(expected["point"]) and majority["diff"]["p_value"] == pytest.approx(expected["p_value"])
    assert majority["diff"]["p_value"] < 0.05 and "worse than tfidf-lr" in majority["verdict"]
    assert (cv_split.path / "report-cv" / "report.md").is_file()
    html = (cv_split.path / "report-cv" / "report.html").read_text(encoding="utf-8")
    assert "Cross-validation report" in html and "<script" not in html and html.count("<svg") == 2
    assert "majority, fold 2:" in html  # every fold's score is a mark with its exact value
    assert "not compared: fasttext has runs on folds 1 only" in result.stderr
    table = runner.invoke(app, ["report", str(cv_split.path)])
    assert table.exit_code == 0 and "over 3 folds" in table.stdout


@pytest.mark.slow
def test_cli_cross_validation_report_errors(cv_split, tmp_path):
    unknown = runner.invoke(app, ["report", str(cv_split.path), "--baseline", "fasttext"])
    assert unknown.exit_code == 1 and "has no run on every fold" in unknown.stderr
    empty = runner.invoke(app, ["report", str(cv_split.path), "--runs-dir", str(tmp_path / "none")])
    assert empty.exit_code == 1 and "no model has a run on every fold" in empty.stderr


@pytest.mark.slow
def test_cross_validation_example_runs_end_to_end(tmp_path):
    import shutil
    import subprocess

    assert shutil.which("nlpkit"), "the nlpkit command must be installed (pip install -e .)"
    script = Path(__file__).resolve().parent.parent / "examples" / "cross_validation.sh"
    done = subprocess.run(["bash", str(script), str(tmp_path / "cv")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "cv" / "folds" / "report-cv" / "report.json").read_text(encoding="utf-8"))
    assert [r["model"] for r in report["rows"]][0] == "tfidf-lr" and len(report["rows"]) == 3
    # the baseline is the model with the best mean valid accuracy over the folds, whatever its test score
    valid = {}
    for run in (tmp_path / "cv" / "runs").iterdir():
        if (run / "metrics.json").is_file():
            model = json.loads((run / "run.json").read_text(encoding="utf-8"))["model"]
            metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
            valid.setdefault(model, []).append(metrics["valid"]["metrics"]["accuracy"])
    best = max(np.mean(v) for m, v in valid.items() if m != "majority")
    chosen = report["baseline"]
    assert chosen != "majority" and np.mean(valid[chosen]) == pytest.approx(best, abs=1e-9)  # (ties: by name)
    assert f"accuracy over 5 folds, baseline {chosen}" in done.stdout


def test_cross_validation_baseline_is_the_best_mean_valid_metric():
    from nlpkit.report.cv import _pick_baseline

    complete = {"tfidf-lr": {}, "fasttext": {}, "majority": {}, "transformer": {}}
    kinds = {"tfidf-lr": "baseline", "fasttext": "baseline", "majority": "baseline", "transformer": "finetune"}
    valid = {"tfidf-lr": 0.80, "fasttext": 0.82, "majority": 0.95, "transformer": 0.99}
    assert _pick_baseline("best-baseline", complete, kinds, valid, True, "s") == "fasttext"
    assert _pick_baseline("best-baseline", complete, kinds, {**valid, "fasttext": None}, True, "s") == "tfidf-lr"
    # lower is better (e.g. hamming loss)
    assert _pick_baseline("best-baseline", complete, kinds, valid, False, "s") == "tfidf-lr"
    assert _pick_baseline("tfidf-lr", complete, kinds, valid, True, "s") == "tfidf-lr"


def test_holm_adjusts_several_p_values_step_down():
    from nlpkit.metrics import holm

    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then non-decreasing
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2]) == [0.2] and holm([]) == []
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_several_comparisons_are_judged_on_holm_adjusted_p_values():
    from nlpkit.report.compare import adjust_for_multiplicity, format_p_adjusted

    # raw p = 0.02 would be "significant"; with three comparisons it is 0.06 at best
    diffs = [{"lo": 0.01, "hi": 0.05, "p_value": 0.02}, {"lo": 0.02, "hi": 0.06, "p_value": 0.001},
             {"lo": -0.01, "hi": 0.03, "p_value": 0.40}]
    adjust_for_multiplicity(diffs)
    assert [d["p_holm"] for d in diffs] == pytest.approx([0.04, 0.003, 0.40])
    assert [d["significant"] for d in diffs] == [True, True, False]
    diffs[0]["p_value"] = 0.03  # 0.03 x 2 = 0.06 after the smallest
    adjust_for_multiplicity(diffs)
    assert diffs[0]["p_holm"] == pytest.approx(0.06) and diffs[0]["significant"] is False
    assert format_p_adjusted(diffs[0]) == "p = 0.060 (Holm, 3 comparisons)"
    one = [{"lo": 0.01, "hi": 0.05, "p_value": 0.02}]
    adjust_for_multiplicity(one)
    assert one[0]["significant"] is True and format_p_adjusted(one[0]) == "p = 0.020"


def test_the_report_adjusts_for_its_comparisons(split):
    y = y_test(split)
    base = add_run(split, noisy(y, 0.20, seed=1), model="tfidf-lr", valid=0.8)
    for seed in (2, 3):
        add_run(split, noisy(y, 0.05, seed=seed), kind="finetune", model=f"transformer{seed}")
    floor = add_run(split, noisy(y, 0.60, seed=4), model="majority")
    report = build_report(split.path, n_boot=100, n_perm=200)
    assert report["baseline"]["name"] == base.name
    diffs = [r["diff"] for r in report["rows"] if r["diff"] is not None and r["name"] != floor.name]
    assert len(diffs) == 2 and all(d["comparisons"] == 2 and d["p_holm"] >= d["p_value"] for d in diffs)
    assert all("(Holm, 2 comparisons)" in r["verdict"] for r in report["rows"]
               if r["verdict"] and r["name"] != floor.name)
    # the majority floor is outside the family: its p is not adjusted
    majority = row_of(report, floor.name)
    assert "p_holm" not in majority["diff"] and "Holm" not in majority["verdict"]

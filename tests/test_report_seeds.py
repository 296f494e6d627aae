"""Runs that differ only in seed are one report row: mean over seeds, a seed-aware interval and test."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from nlpkit.cli import app
from nlpkit.report import build_report
from test_report import add_run, make_split, noisy, y_test


@pytest.fixture
def split(tmp_path):
    return make_split(tmp_path / "split")


def seeded(split, pred, *, seed, model="tfidf-lr", kind="baseline", config=None, valid=None):
    run = add_run(split, pred, model=model, kind=kind, valid=valid)
    run.update_info(seed=seed, config={"model": model, "params": {"C": 10, "seed": seed}, "seed": seed,
                                       **(config or {})})
    return run


def test_seeds_of_one_model_are_one_row_with_their_mean_and_a_seed_aware_comparison(split):
    y = y_test(split)
    a = [seeded(split, noisy(y, 0.10 + 0.02 * i, seed=i), seed=i, valid=0.8) for i in (1, 2, 3)]
    base = seeded(split, noisy(y, 0.3, seed=9), seed=0, model="fasttext", valid=0.9)
    report = build_report(split.path, baseline=base.name, n_boot=200, n_perm=200)
    assert len(report["rows"]) == 2
    row = next(r for r in report["rows"] if r["model"] == "tfidf-lr")
    assert row["seeds"] == [1, 2, 3] and row["seed_runs"] == [r.name for r in a]
    assert row["label"] == "tfidf-lr (3 seeds)"
    assert next(r for r in report["rows"] if r["is_baseline"])["label"] == "fasttext (1 seed)"
    assert row["metric"]["point"] == pytest.approx(np.mean(row["seed_scores"]))
    assert row["seed_sd"] == pytest.approx(np.std(row["seed_scores"], ddof=1))
    diff = row["diff"]
    assert diff["test"].startswith("seed-aware t (3 vs 1 seeds")
    assert (diff["lo"] > 0 or diff["hi"] < 0) == (diff["p_value"] < 0.05)
    md = (split.path.parent / "r.md")
    from nlpkit.report import render_markdown

    md.write_text(render_markdown(report))
    assert "## Seeds" in md.read_text() and "tfidf-lr (3 seeds): 1: " in md.read_text()


def test_other_options_or_a_repeated_seed_are_other_rows(split):
    y = y_test(split)
    seeded(split, noisy(y, 0.1, seed=1), seed=1)
    seeded(split, noisy(y, 0.1, seed=2), seed=2, config={"params": {"C": 30, "seed": 2}})  # another C
    seeded(split, noisy(y, 0.1, seed=3), seed=1)  # the first run again
    report = build_report(split.path, n_boot=50, n_perm=50)
    assert len(report["rows"]) == 3 and not any(r.get("seeds") for r in report["rows"])
    assert all("seed" not in r["label"] for r in report["rows"])  # nothing grouped: labels as before


def test_best_baseline_is_chosen_by_the_mean_valid_metric_of_its_seeds(split):
    y = y_test(split)
    for i, v in zip((1, 2, 3), (0.95, 0.5, 0.5)):  # one lucky seed, a poor mean
        seeded(split, noisy(y, 0.1, seed=i), seed=i, valid=v)
    steady = seeded(split, noisy(y, 0.2, seed=7), seed=0, model="fasttext", valid=0.7)
    report = build_report(split.path, n_boot=50, n_perm=50)
    assert report["baseline"]["name"] == steady.name


@pytest.mark.parametrize("args, fragment", [
    (["--seed", "1", "--seeds", "1,2"], "give --seed or --seeds, not both"),
    (["--seeds", "1,1"], "more than once"),
    (["--seeds", "1,x"], "is not a seed"),
    (["--seeds", ""], "needs seeds"),
])
def test_bad_seeds_are_one_line_errors(split, runs_dir, args, fragment):
    result = CliRunner().invoke(app, ["baseline", str(split.path), "-m", "majority", *args])
    assert result.exit_code != 0 and fragment in result.output and "Traceback" not in result.output
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_baseline_seeds_train_one_run_per_seed(split, runs_dir):
    from nlpkit.runs import list_runs

    result = CliRunner().invoke(app, ["baseline", str(split.path), "-m", "tfidf-lr", "--seeds", "4,5"])
    assert result.exit_code == 0, result.output
    assert sorted(r.info["seed"] for r in list_runs(runs_dir)) == [4, 5]
    assert "(seed 4)" in result.output and "(seed 5)" in result.output

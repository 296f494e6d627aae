"""`nlpkit curve`: nested stratified fractions, one recorded curve-point run each, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nlpkit.cli import app

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def split(tmp_path):
    path = tmp_path / "split"
    result = CliRunner().invoke(app, ["split", str(REPO / "data" / "agnews_sample.jsonl"), "--out", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_fractions_are_nested_stratified_and_seeded(split):
    from nlpkit.curve import nested_fractions
    from nlpkit.data import load_split

    s = load_split(split)
    subsets = nested_fractions(s, [0.1, 0.5, 1.0], seed=3)
    ids = {f: set(d.ids) for f, d in subsets.items()}
    assert ids[0.1] <= ids[0.5] <= ids[1.0] == set(s.train.ids)
    assert len(ids[0.5]) == round(0.5 * len(s.train))
    full = np.asarray(s.train.y.sum(axis=0)).ravel() / len(s.train)
    half = np.asarray(subsets[0.5].y.sum(axis=0)).ravel() / len(subsets[0.5])
    assert np.abs(full - half).max() < 0.02  # every class keeps its share
    again = nested_fractions(s, [0.1, 0.5, 1.0], seed=3)
    assert set(again[0.1].ids) == ids[0.1]
    assert set(nested_fractions(s, [0.1, 1.0], seed=4)[0.1].ids) != ids[0.1]


def test_curve_records_one_point_per_model_fraction_and_seed_kept_out_of_the_leaderboard(split, runs_dir):
    from nlpkit.report import build_report
    from nlpkit.runs import list_runs

    assert CliRunner().invoke(app, ["baseline", str(split), "-m", "majority"]).exit_code == 0
    result = CliRunner().invoke(app, ["curve", str(split), "-m", "tfidf-lr", "--fractions", "0.25,1",
                                      "--seeds", "1,2", "--json", "--jobs", "1"])
    assert result.exit_code == 0, result.output
    points = json.loads(result.output[result.output.index("["):])
    assert sorted((p["fraction"], p["seed"]) for p in points) == [(0.25, 1), (0.25, 2), (1.0, 1), (1.0, 2)]
    curve_runs = [r for r in list_runs(runs_dir) if r.role == "curve-point"]
    assert len(curve_runs) == 4
    for run in curve_runs:
        assert run.info["data"]["n_train"] == run.info["curve"]["n_train"]
        assert run.info["seed"] == run.info["curve"]["seed"]
    report = build_report(split)
    assert all(row["name"] not in {r.name for r in curve_runs} for row in report["rows"])


@pytest.mark.parametrize("args, fragment", [
    (["--fractions", "0,0.5"], "not in (0, 1]"),
    (["--fractions", "0.5,1.5"], "not in (0, 1]"),
    (["--fractions", "0.5,half"], "not a number"),
    (["--fractions", "0.5,0.5"], "twice"),
    (["--seeds", "1,1"], "more than once"),
    (["--fractions", "0.0001"], "no document"),
])
def test_bad_curve_input_is_one_line_error_and_records_nothing(split, runs_dir, args, fragment):
    result = CliRunner().invoke(app, ["curve", str(split), "-m", "majority", *args])
    assert result.exit_code != 0 and fragment in result.output and "Traceback" not in result.output
    assert not runs_dir.exists() or not any(p for p in runs_dir.iterdir() if not p.name.startswith("."))


def test_nothing_to_draw_is_an_error(split, runs_dir):
    result = CliRunner().invoke(app, ["curve", str(split)])
    assert result.exit_code != 0 and "nothing to draw" in result.output


def test_a_fraction_that_loses_a_label_warns_and_records_it(tmp_path, runs_dir):
    from conftest import make_dataset
    from nlpkit.data import write_split
    from nlpkit.runs import list_runs

    names = ["a", "b", "rare"]
    texts = [f"alpha text {i}" for i in range(10)] + [f"beta text {i}" for i in range(9)] + ["rare gamma"]
    labels = [["a"]] * 10 + [["b"]] * 9 + [["rare"]]
    train = make_dataset(texts, labels, task="single", label_names=names, ids=[f"t{i}" for i in range(20)])
    test = make_dataset(["alpha x", "beta y", "rare z"], [["a"], ["b"], ["rare"]], task="single", label_names=names,
                        ids=["x0", "x1", "x2"])
    valid = make_dataset(["alpha v", "beta v"], [["a"], ["b"]], task="single", label_names=names, ids=["v0", "v1"])
    split = write_split(tmp_path / "s", {"train": train, "valid": valid, "test": test}, {"seed": 0, "source": "t"})
    result = CliRunner().invoke(app, ["curve", str(split.path), "-m", "majority", "--fractions", "0.1,1",
                                      "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "have no training document" in " ".join(result.output.split())
    notes = [r.info["curve"].get("note") for r in list_runs(runs_dir)]
    assert sum(bool(n) for n in notes) == 1


@pytest.mark.slow  # starts worker processes
def test_points_trained_side_by_side_are_the_points_trained_one_after_another(split, tmp_path):
    from nlpkit.curve import learning_curve

    def points(jobs):
        runs = learning_curve(split, baselines=["tfidf-lr", "majority"], fractions=[0.5, 1.0], seeds=[1],
                              runs_dir=tmp_path / f"runs{jobs}", jobs=jobs)
        return [((r.model, r.info["curve"]["fraction"]), r.predictions()) for r in runs]

    alone, side_by_side = points(1), points(2)
    assert [key for key, _ in alone] == [key for key, _ in side_by_side]  # same order
    assert len({key for key, _ in alone}) == 4
    for (_key, (ids_a, scores_a, pred_a)), (_key2, (ids_b, scores_b, pred_b)) in zip(alone, side_by_side):
        assert ids_a == ids_b and np.array_equal(pred_a, pred_b) and np.array_equal(scores_a, scores_b)


@pytest.mark.slow
def test_report_draws_the_curves_with_intervals_and_names_crossings(split, runs_dir):
    from nlpkit.report import build_report
    from nlpkit.report.curves import crossings

    assert CliRunner().invoke(app, ["baseline", str(split), "-m", "tfidf-lr"]).exit_code == 0
    assert CliRunner().invoke(app, ["curve", str(split), "-m", "tfidf-lr", "-m", "majority",
                                    "--fractions", "0.2,1", "--seeds", "1,2"]).exit_code == 0
    curves = build_report(split, n_boot=100, n_perm=100)["curves"]
    assert {m["model"] for m in curves["models"]} == {"tfidf-lr", "majority"}
    tfidf = next(m for m in curves["models"] if m["model"] == "tfidf-lr")
    assert [p["fraction"] for p in tfidf["points"]] == [0.2, 1.0]
    for p in tfidf["points"]:
        assert p["seeds"] == [1, 2] and p["lo"] <= p["point"] <= p["hi"]
    assert tfidf["points"][1]["n_train"] > tfidf["points"][0]["n_train"]
    assert "extrapolated" in curves["note"]
    # crossings: only where the order changes between two measured fractions
    a = {"label": "A", "points": [{"fraction": 0.1, "point": 0.5, "n_train": 10}, {"fraction": 1.0, "point": 0.9, "n_train": 100}]}
    b = {"label": "B", "points": [{"fraction": 0.1, "point": 0.7, "n_train": 10}, {"fraction": 1.0, "point": 0.8, "n_train": 100}]}
    assert crossings([a, b]) == ["A overtakes B between 0.1 and 1 of the train part (10 and 100 training documents)"]
    b["points"][1]["point"] = 0.95
    assert crossings([a, b]) == []


def test_a_report_without_curve_points_has_none(split, runs_dir):
    from nlpkit.report import build_report

    assert CliRunner().invoke(app, ["baseline", str(split), "-m", "majority"]).exit_code == 0
    assert build_report(split, n_boot=50, n_perm=50)["curves"] is None


@pytest.mark.slow
def test_the_report_files_draw_the_curves(split, runs_dir, tmp_path):
    assert CliRunner().invoke(app, ["baseline", str(split), "-m", "tfidf-lr"]).exit_code == 0
    assert CliRunner().invoke(app, ["curve", str(split), "-m", "tfidf-lr", "-m", "majority",
                                    "--fractions", "0.2,1"]).exit_code == 0
    result = CliRunner().invoke(app, ["report", str(split), "--out", str(tmp_path / "rep"), "--n-boot", "100",
                                      "--n-perm", "100"])
    assert result.exit_code == 0, result.output
    assert "Learning curves (2 models)" in result.output
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert "## Learning curves" in md and "0.2 of train" in md and "extrapolated" in md
    html = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Learning curves</h2>" in html and 'aria-label="learning curves' in html
    section = html[html.index("<h2>Learning curves</h2>"):]
    assert section[:section.index("</div>")].count("<polyline") == 2  # one line per model

"""A model family is one file plus one registry line: tests/extra_family.py, registered here by one
line (the ``centroid`` fixture), goes through `nlpkit baseline`, `run_baselines` on a k-fold split
and `nlpkit report` with no other change to nlpkit."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import extra_family
from nlpkit import models
from nlpkit.cli import app

runner = CliRunner()
FAMILY = extra_family.FAMILY


@pytest.fixture
def centroid(monkeypatch):
    monkeypatch.setitem(models.REGISTRY, FAMILY, extra_family.IMPORT_PATH)  # the one registry line


@pytest.fixture
def kfold_split(make_split, data_dir):
    from nlpkit.data import read_dataset

    ds = read_dataset(data_dir / "agnews_sample.jsonl")
    idx = np.arange(300)
    return make_split({f"fold{k}": ds.subset(idx[k::3]) for k in range(3)}, "kfold")


def _runs(runs_dir: Path) -> dict[Path, dict]:
    """run.json of every run recorded, by run folder."""
    return {p: json.loads((p / "run.json").read_text()) for p in sorted(runs_dir.iterdir()) if not p.name.startswith(".")}


def test_it_is_a_baseline_family_as_soon_as_it_is_registered(centroid):
    from nlpkit.baseline import baseline_config, baseline_models

    assert baseline_models() == ["majority", "tfidf-lr", "fasttext", "word2vec", FAMILY]  # registry order
    assert baseline_config([])["models"][-1] == FAMILY
    help_text = " ".join(runner.invoke(app, ["baseline", "--help"]).stdout.replace("│", " ").split())
    assert f"Default: all of majority, tfidf-lr, fasttext, word2vec, {FAMILY}." in help_text


def test_baseline_cli_trains_it_and_prints_its_own_choice(centroid, single_split, runs_dir):
    result = runner.invoke(app, ["baseline", str(single_split.path), "-m", FAMILY, "-m", "majority"])
    assert result.exit_code == 0, result.output
    path, run = next((p, r) for p, r in _runs(runs_dir).items() if r["model"] == FAMILY)
    assert run["kind"] == "baseline" and run["config"]["params"] == {"weighting": "auto"}
    choice = run["fit_info"]["weighting_choice"]
    other = "binary" if choice["chosen"] == "counts" else "counts"
    line = (f"{FAMILY} chose {choice['chosen']} word weights (valid top-1 hit rate {choice['valid'][choice['chosen']]:.3f} "
            f"against {choice['valid'][other]:.3f} for {other})")
    assert line in result.stdout  # from NearestCentroidClassifier.describe_choices
    assert isinstance(models.load_model(path / "model"), extra_family.NearestCentroidClassifier)


def test_its_parameters_are_set_and_checked_like_any_family(centroid, single_split, runs_dir):
    ok = runner.invoke(app, ["baseline", str(single_split.path), "-m", FAMILY, "--set", f"{FAMILY}.weighting=binary",
                             "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)[0]["fit_info"] == {"weighting": "binary"}  # no choice made: nothing printed
    bad = runner.invoke(app, ["baseline", str(single_split.path), "-m", FAMILY, "--set", f"{FAMILY}.weighting=tf"])
    assert bad.exit_code == 1
    assert (f"--set {FAMILY}.weighting=tf: {FAMILY}'s weighting must be one of 'auto', 'counts', 'binary'; "
            "got 'tf'.") in bad.stderr
    tune = runner.invoke(app, ["baseline", str(single_split.path), "-m", FAMILY, "--tune"])
    assert tune.exit_code == 1 and "--tune applies to tfidf-lr and fasttext; none of them is selected." in tune.stderr


def test_run_baselines_runs_the_folds_of_a_kfold_split_from_python(centroid, kfold_split, runs_dir):
    from nlpkit.baseline import baseline_config, run_baselines

    config = baseline_config(["majority", FAMILY])
    one = run_baselines(kfold_split.path, config, fold=1)
    assert [(r.model, r.info["data"]["fold"]) for r in one] == [("majority", 1), (FAMILY, 1)]
    every = run_baselines(kfold_split, config)  # a Split loaded once, every fold in turn
    assert [(r.model, r.info["data"]["fold"]) for r in every] == [(m, k) for k in range(3) for m in ("majority", FAMILY)]
    assert all(r.info["data"]["n_test"] == 100 for r in every)


def test_kfold_cli_summarises_its_choices_over_the_folds(centroid, kfold_split, runs_dir):
    result = runner.invoke(app, ["baseline", str(kfold_split.path), "-m", FAMILY])
    assert result.exit_code == 0, result.output
    assert "3-fold cross-validation" in result.stdout
    chosen = [r["fit_info"]["weighting_choice"]["chosen"] for r in _runs(runs_dir).values()]
    for weighting in set(chosen):
        assert f"{FAMILY} chose {weighting} word weights on {chosen.count(weighting)} of 3 folds" in result.stdout


def test_report_compares_it(centroid, single_split, runs_dir, tmp_path):
    trained = runner.invoke(app, ["baseline", str(single_split.path), "-m", "majority", "-m", FAMILY])
    assert trained.exit_code == 0, trained.output
    report = runner.invoke(app, ["report", str(single_split.path), "--format", "json", "--out", str(tmp_path / "r"),
                                 "--n-boot", "50", "--n-perm", "50"])
    assert report.exit_code == 0, report.output
    names = [row["name"] for row in json.loads(report.stdout)["rows"]]
    assert any(FAMILY in name for name in names) and any("majority" in name for name in names)


def test_baseline_py_names_no_family():
    """The baseline layer has no per-family code: no family name appears in it as a value."""
    for module in ("baseline.py", "cli/baseline.py", "experiment.py"):
        tree = ast.parse((Path(models.__file__).parent.parent / module).read_text(encoding="utf-8"))
        named = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)} & set(models.REGISTRY)
        assert not named, f"nlpkit/{module} names {named}"

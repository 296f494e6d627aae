"""`nlpkit finetune --tune`: every trial recorded, the best on valid kept, trials out of reports, budget kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("transformers")

from nlpkit.cli import app  # noqa: E402
from test_finetune import make_tiny_checkpoint  # noqa: E402
from test_finetune_cli import _split  # noqa: E402

FAST = ["--epochs", "1", "--max-length", "32", "--batch-size", "8", "--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tune-ckpt") / "tiny-bert")


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    return _split(root / "agnews", "agnews_sample.jsonl", {"train": (0, 40), "valid": (40, 56), "test": (56, 76)}).path


def invoke(*args):
    return CliRunner().invoke(app, ["finetune", *map(str, args)])


def test_tune_records_every_trial_keeps_the_best_on_valid_and_reports_only_it(ckpt, split, runs_dir):
    from nlpkit.finetune import TUNE_HEAD_LRS, TUNE_LRS
    from nlpkit.report import build_report
    from nlpkit.runs import list_runs

    assert CliRunner().invoke(app, ["baseline", str(split), "-m", "majority"]).exit_code == 0
    result = invoke(split, "--model", ckpt, *FAST, "--lr", "3e-5", "--tune", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    trials = summary["tune"]["trials"]
    # the options as given first, then the whole grid
    assert (trials[0]["lr"], trials[0]["head_lr"]) == (3e-5, 3e-3)  # --head-lr left at its default
    assert len(trials) == 1 + len(TUNE_LRS) * len(TUNE_HEAD_LRS)
    runs = {run.name: run for run in list_runs(runs_dir, kind="finetune")}
    assert sorted(r.role for r in runs.values()) == ["tune-trial"] * (len(trials) - 1) + ["tuned"]
    kept = runs[summary["run"]]
    assert kept.role == "tuned" and trials[summary["tune"]["chosen"]]["run"] == kept.name
    valid = [t["valid_metric"] for t in trials]
    assert kept.info["fit_info"]["best_valid_metric"] == max(valid)
    assert summary["tune"]["chosen"] == valid.index(max(valid))  # the first best: ties go to the earlier trial
    for t in trials:  # each trial ran with its own learning rates
        assert runs[t["run"]].info["config"]["lr"] == t["lr"] and runs[t["run"]].info["config"]["head_lr"] == t["head_lr"]
    report = build_report(split)
    assert sorted(row["name"] for row in report["rows"] if row["name"] in runs) == [kept.name]
    assert sum("--tune" in e["reason"] for e in report["excluded"]) == len(trials) - 1
    listing = CliRunner().invoke(app, ["runs"])
    assert listing.output.count("(tune-trial)") == len(trials) - 1 and listing.output.count("(tuned)") == 1


def test_the_budget_decides_how_many_trials_run_and_caps_their_training(ckpt, split, runs_dir, monkeypatch):
    import nlpkit.finetune as ft

    monkeypatch.setattr(ft, "MIN_TRIAL_SECONDS", 2.0)
    run = ft.finetune_tuned(split, ckpt, budget_seconds=12.0, runs_dir=runs_dir, epochs=1, max_length=32,
                            batch_size=8, threads=1, device="cpu")
    trials = run.info["tune"]["trials"]
    ran = [t for t in trials if t["run"] is not None]
    assert len(ran) == 2  # the screen: 12 s x 0.5 x 0.8 / 2 s
    assert all("skipped" in t for t in trials[2:])
    from nlpkit.runs import load_run

    first = load_run(ran[0]["run"], runs_dir)
    assert first.info["config"]["time_budget"] <= 12.0 * ft.SCREEN_SHARE * ft.TRIAL_SHARE / 2 + 1e-9


class FakeRun:
    """What finetune_tuned reads of a run: its name, fit_info, and update_info."""

    def __init__(self, name, valid, stopped):
        self.name, self.info = name, {"fit_info": {"best_valid_metric": valid, "stopped": stopped}}

    def update_info(self, **changes):
        self.info.update(changes)


def fake_finetune(scores: dict, calls: list):
    """A stand-in for finetune(): valid from ``scores[(lr, head_lr)]`` (a function of the training
    seconds), stopped by its time budget unless the score function says otherwise."""
    def finetune(split_dir, model_dir, *, time_budget=None, lr, head_lr, name, **kwargs):
        calls.append({"lr": lr, "head_lr": head_lr, "time_budget": time_budget, "name": name})
        valid, stopped = scores[(lr, head_lr)](time_budget)
        return FakeRun(f"run{len(calls)}", valid, stopped)
    return finetune


def test_a_budgeted_search_screens_every_pair_then_trains_the_best_again_for_longer(monkeypatch):
    import nlpkit.finetune as ft

    pairs = ft.tune_candidates({})
    budget = "time budget of 1 s reached"
    scores = {pair: (lambda s, v=0.5 + 0.01 * i: (v + (0.2 if s > 500 else 0.0), budget))
              for i, pair in enumerate((p["lr"], p["head_lr"]) for p in pairs)}
    calls = []
    monkeypatch.setattr(ft, "finetune", fake_finetune(scores, calls))
    run = ft.finetune_tuned("split", "model", budget_seconds=1200.0)
    trials = run.info["tune"]["trials"]
    # six screening trials on half the budget, each its share of what is left of the half (the fake
    # takes no time, so the later ones get more)
    assert len(calls) == len(pairs) + 1
    assert calls[0]["time_budget"] == pytest.approx(600 * ft.TRIAL_SHARE / len(pairs), rel=1e-3)
    assert all(c["time_budget"] <= 600 * ft.TRIAL_SHARE for c in calls[:-1])
    # then the best screened pair (the last: highest valid) again, on the time left
    refit = calls[-1]
    assert (refit["lr"], refit["head_lr"]) == (pairs[-1]["lr"], pairs[-1]["head_lr"])
    assert refit["time_budget"] > 500 and refit["name"] == f"refit of trial {len(pairs)}"
    assert trials[-1]["refit_of"] == len(pairs) - 1
    assert run.info["tune"]["chosen"] == len(trials) - 1 and run.info["role"] == ft.TUNED_ROLE
    from nlpkit.cli.finetune import _tune_line

    assert _tune_line(run.info["tune"]).startswith("trial 7 (trial 6 trained longer) of 7 (lr 0.0002, head lr 0.003)")


def test_no_refit_when_the_best_trial_ended_on_its_own_or_without_a_budget(monkeypatch):
    import nlpkit.finetune as ft

    pairs = ft.tune_candidates({})
    ended = {(p["lr"], p["head_lr"]): (lambda s, v=0.5 + 0.01 * i: (v, "early stop: no improvement in 2 evaluation(s)"))
             for i, p in enumerate(pairs)}
    for budget in (1200.0, None):
        calls = []
        monkeypatch.setattr(ft, "finetune", fake_finetune(ended, calls))
        run = ft.finetune_tuned("split", "model", budget_seconds=budget)
        assert len(calls) == len(pairs) and "refit_of" not in run.info["tune"]["trials"][-1]
        assert run.info["tune"]["chosen"] == len(pairs) - 1
        assert all(c["time_budget"] is None for c in calls) == (budget is None)


@pytest.mark.parametrize("extra, fragment", [
    (["--tune-budget", "1s", "--tune"], "cannot give a trial"),
    (["--tune-budget", "30m"], "--tune-budget only applies with --tune"),
    (["--tune", "--resume"], "not a --tune search"),
    (["--tune", "--tune-budget", "soon"], "soon"),
])
def test_bad_tune_options_are_one_line_errors_and_record_nothing(ckpt, split, runs_dir, extra, fragment):
    result = invoke(split, "--model", ckpt, *FAST, *extra)
    assert result.exit_code != 0
    assert fragment in result.output and "Traceback" not in result.output
    assert not runs_dir.exists() or not any(p for p in runs_dir.iterdir() if not p.name.startswith("."))


@pytest.mark.slow
def test_seeds_after_tune_train_with_the_chosen_settings_and_report_as_one_row(ckpt, split, runs_dir):
    from nlpkit.report import build_report
    from nlpkit.runs import list_runs

    assert CliRunner().invoke(app, ["baseline", str(split), "-m", "majority"]).exit_code == 0
    result = invoke(split, "--model", ckpt, *FAST, "--tune", "--seeds", "7,8", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output[result.output.index("["):])
    assert [r["seed"] for r in rows] == [7, 8] and [r["role"] for r in rows] == ["tuned", "tuned"]
    kept = {r.name: r for r in list_runs(runs_dir, kind="finetune") if r.role == "tuned"}
    first, second = (kept[r["run"]] for r in rows)
    chosen = first.info["tune"]["trials"][first.info["tune"]["chosen"]]
    assert (second.info["config"]["lr"], second.info["config"]["head_lr"]) == (chosen["lr"], chosen["head_lr"])
    assert all(r.info["seed"] == 7 for r in list_runs(runs_dir, kind="finetune") if r.role == "tune-trial")
    report = build_report(split)
    (row,) = [r for r in report["rows"] if r["kind"] == "finetune"]
    assert row["seeds"] == [7, 8]


def test_plain_seeds_train_one_run_each_and_resume_takes_one_seed(ckpt, split, runs_dir):
    from nlpkit.runs import list_runs

    result = invoke(split, "--model", ckpt, *FAST, "--seeds", "1,2")
    assert result.exit_code == 0, result.output
    assert sorted(r.info["seed"] for r in list_runs(runs_dir)) == [1, 2]
    bad = invoke(split, "--model", ckpt, *FAST, "--seeds", "1,2", "--resume")
    assert bad.exit_code != 0 and "give its --seed" in bad.output and "Traceback" not in bad.output

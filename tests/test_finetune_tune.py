"""`nlpkit finetune --tune`: every trial recorded, the best on valid kept, trials out of reports, budget
kept, poor trials pruned against the reference run's curve."""

from __future__ import annotations

import json
import time
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
    from nlpkit.finetune import TUNE_BATCH_SIZES, TUNE_HEAD_LRS, TUNE_LRS
    from nlpkit.report import build_report
    from nlpkit.runs import list_runs

    assert CliRunner().invoke(app, ["baseline", str(split), "-m", "majority"]).exit_code == 0
    result = invoke(split, "--model", ckpt, *FAST, "--lr", "3e-5", "--tune", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    trials = summary["tune"]["trials"]
    # the options as given first, then the whole grid
    assert (trials[0]["lr"], trials[0]["head_lr"], trials[0]["batch_size"]) == (3e-5, 3e-3, 8)  # --head-lr: default
    assert len(trials) == 1 + len(TUNE_LRS) * len(TUNE_HEAD_LRS) * len(TUNE_BATCH_SIZES)
    runs = {run.name: run for run in list_runs(runs_dir, kind="finetune")}
    assert sorted(r.role for r in runs.values()) == ["tune-trial"] * (len(trials) - 1) + ["tuned"]
    kept = runs[summary["run"]]
    assert kept.role == "tuned" and trials[summary["tune"]["chosen"]]["run"] == kept.name
    valid = [t["valid_metric"] for t in trials]
    assert kept.info["fit_info"]["best_valid_metric"] == max(valid)
    assert summary["tune"]["chosen"] == valid.index(max(valid))  # the first best: ties go to the earlier trial
    for t in trials:  # each trial ran with its own settings
        config = runs[t["run"]].info["config"]
        assert (config["lr"], config["head_lr"], config["batch_size"]) == (t["lr"], t["head_lr"], t["batch_size"])
    report = build_report(split)
    assert sorted(row["name"] for row in report["rows"] if row["name"] in runs) == [kept.name]
    assert sum("--tune" in e["reason"] for e in report["excluded"]) == len(trials) - 1
    listing = CliRunner().invoke(app, ["runs"])
    assert listing.output.count("(tune-trial)") == len(trials) - 1 and listing.output.count("(tuned)") == 1


def test_the_budget_caps_the_reference_then_each_trial_and_skips_what_does_not_fit(ckpt, split, runs_dir, monkeypatch):
    import nlpkit.finetune as ft
    from nlpkit.runs import load_run

    monkeypatch.setattr(ft, "MIN_TRIAL_SECONDS", 2.0)
    real = ft.finetune

    def slow_finetune(*args, **kwargs):  # a tiny trial takes well under a second: make each take one more
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(ft, "finetune", slow_finetune)
    run = ft.finetune_tuned(split, ckpt, budget_seconds=6.0, runs_dir=runs_dir, epochs=1, max_length=32,
                            batch_size=8, threads=1, device="cpu")
    trials = run.info["tune"]["trials"]
    ran = [t for t in trials if t["run"] is not None]
    assert 1 <= len(ran) < len(trials) and all("skipped" in t for t in trials[len(ran):])
    # the reference: at most its share of the budget; every trial: at most the share of what was left
    assert load_run(ran[0]["run"], runs_dir).info["config"]["time_budget"] <= 6.0 * ft.REFERENCE_SHARE * ft.TRIAL_SHARE
    assert all(t["time_budget"] <= 6.0 * ft.TRIAL_SHARE for t in ran)
    assert run.info["tune"]["seconds"] < 6.0 + 5.0 * len(ran)  # each trial may overrun by its scoring and saving


class FakeRun:
    """What finetune_tuned reads of a run: its name, fit_info, and update_info."""

    def __init__(self, name, valid, stopped, history=()):
        self.name = name
        self.info = {"fit_info": {"best_valid_metric": valid, "stopped": stopped, "history": list(history)}}

    def update_info(self, **changes):
        self.info.update(changes)


def fake_finetune(curves: dict, calls: list):
    """A stand-in for finetune(): each trial's valid metric by epoch is ``curves[(lr, head_lr, batch)]``;
    it stops as the training loop would under ``prune_below`` (tested on the real loop below)."""
    from nlpkit.models.transformer import pruning_floor

    def finetune(split_dir, model_dir, *, lr, head_lr, batch_size, name, time_budget=None, prune_below=None, **kw):
        calls.append({"lr": lr, "head_lr": head_lr, "batch_size": batch_size, "time_budget": time_budget,
                      "prune_below": prune_below, "name": name})
        history, stopped = [], None
        for epoch, valid in enumerate(curves[(lr, head_lr, batch_size)], start=1):
            history.append({"epoch": float(epoch), "valid_metric": valid})
            floor = pruning_floor(tuple(map(tuple, prune_below or ())), epoch)
            best = max(h["valid_metric"] for h in history)
            if floor is not None and best < floor[1] and epoch < len(curves[(lr, head_lr, batch_size)]):
                stopped = "pruned: below the reference"
                break
        return FakeRun(f"run{len(calls)}", max(h["valid_metric"] for h in history), stopped, history)
    return finetune


def test_the_reference_runs_first_and_its_running_mean_prunes_the_other_trials(monkeypatch):
    import nlpkit.finetune as ft

    candidates = ft.tune_candidates({})
    keys = [(c["lr"], c["head_lr"], c["batch_size"]) for c in candidates]
    reference = [0.6, 0.7, 0.8, 0.85, 0.9, 0.9]  # running means from epoch 2: 0.65, 0.7, 0.7375, ...
    curves = {key: [0.5, 0.6, 0.62, 0.63, 0.64, 0.65] for key in keys}  # below the reference's mean by epoch 3
    curves[keys[0]] = reference
    curves[keys[1]] = [0.5, 0.66, 0.75, 0.88, 0.93, 0.92]  # slow start (the grace), then above: kept
    calls = []
    monkeypatch.setattr(ft, "finetune", fake_finetune(curves, calls))
    run = ft.finetune_tuned("split", "model")
    tune = run.info["tune"]
    assert len(calls) == len(candidates) and calls[0]["prune_below"] is None  # the reference: no pruning
    assert [e for e, _ in tune["pruned_below"]] == [2, 3, 4, 5, 6]  # from a third of the 6 epochs on
    assert [v for _, v in tune["pruned_below"]] == pytest.approx([sum(reference[:e]) / e for e in range(2, 7)])
    assert all(c["prune_below"] == tune["pruned_below"] for c in calls[1:])
    stopped = [t["stopped"] for t in tune["trials"]]
    assert stopped[0] is None and stopped[1] is None
    assert all(s.startswith("pruned") for s in stopped[2:])
    assert tune["chosen"] == 1 and run.info["role"] == ft.TUNED_ROLE
    from nlpkit.cli.finetune import _tune_line

    assert _tune_line(tune).startswith(f"trial 2 of 12 ({'lr 0.0001, head lr 0.003, batch 32'}), search ")
    assert _tune_line(tune).endswith(", 10 pruned")


def test_no_trial_beats_the_reference_so_the_reference_is_kept(monkeypatch):
    import nlpkit.finetune as ft

    keys = [(c["lr"], c["head_lr"], c["batch_size"]) for c in ft.tune_candidates({"epochs": 3})]
    curves = {key: [0.5, 0.6, 0.7] for key in keys}  # every trial equal to the reference: ties go to it
    calls = []
    monkeypatch.setattr(ft, "finetune", fake_finetune(curves, calls))
    run = ft.finetune_tuned("split", "model", budget_seconds=3600.0, epochs=3)
    assert run.info["tune"]["chosen"] == 0 and run.info["tune"]["pruned_below"] == [[1.0, 0.5], [2.0, 0.55], [3.0, 0.6]]
    assert calls[0]["time_budget"] == pytest.approx(3600 * ft.REFERENCE_SHARE * ft.TRIAL_SHARE, rel=1e-3)
    assert all(3600 * ft.TRIAL_SHARE * 0.99 < c["time_budget"] <= 3600 * ft.TRIAL_SHARE for c in calls[1:])


def test_the_candidates_change_one_setting_of_the_given_first():
    import nlpkit.finetune as ft

    given = {"lr": 1e-4, "head_lr": 3e-3, "batch_size": 16}
    trials = ft.tune_candidates(given)
    assert trials[0] == given and len(trials) == len({tuple(t.values()) for t in trials}) == 12
    changed = [sum(t[k] != given[k] for k in ft.TUNED_KEYS) for t in trials]
    assert changed == sorted(changed) and changed[1:5] == [1, 1, 1, 1]
    assert trials[1] == {**given, "batch_size": 32} and [t["lr"] for t in trials[2:4]] == [5e-5, 2e-4]
    assert trials[4] == {**given, "head_lr": None}
    assert ft.tune_candidates({"lr": 3e-5})[0] == {"lr": 3e-5, "head_lr": 3e-3, "batch_size": 16}


def test_prune_below_is_the_search_s_own_and_must_be_pairs(ckpt, split, runs_dir):
    from nlpkit.errors import ConfigError
    from nlpkit.finetune import finetune, finetune_tuned

    with pytest.raises(ConfigError, match="set by --tune itself"):
        finetune_tuned(split, ckpt, runs_dir=runs_dir, prune_below=[[1.0, 0.5]])
    with pytest.raises(ConfigError, match=r"\[epoch, valid metric\] pairs"):
        finetune(split, ckpt, runs_dir=runs_dir, prune_below=[1.0, 0.5])
    assert not runs_dir.exists() or not any(p for p in runs_dir.iterdir() if not p.name.startswith("."))


def test_the_training_loop_stops_a_trial_below_its_floor(ckpt, split, runs_dir):
    from nlpkit.finetune import finetune

    options = dict(epochs=3, max_length=32, batch_size=8, threads=1, device="cpu", runs_dir=runs_dir)
    pruned = finetune(split, ckpt, prune_below=[[1.0, 1.01]], **options).info["fit_info"]
    assert pruned["stopped"].startswith("pruned: best valid") and len(pruned["history"]) == 1
    kept = finetune(split, ckpt, prune_below=[[1.0, -1.0]], patience=0, **options).info["fit_info"]
    assert kept["stopped"] == "all epochs done" and len(kept["history"]) == 3


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
    assert all(second.info["config"][key] == chosen[key] for key in ("lr", "head_lr", "batch_size"))
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

"""Cost with context in the report: devices recorded, prediction re-measured here, money from prices."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nlpkit.cli import app
from nlpkit.report import build_report
from nlpkit.report.cost import money, parse_prices
from test_report import add_run, make_split, noisy, y_test

REPO = Path(__file__).resolve().parent.parent


def test_each_row_shows_the_device_its_run_recorded(tmp_path):
    split = make_split(tmp_path / "split")
    y = y_test(split)
    gpu = add_run(split, noisy(y, 0.1, seed=1), kind="finetune", model="transformer")
    gpu.update_info(machine={"cpu": "x", "cpu_cores": 16, "gpu": "NVIDIA H100", "gpus": 1, "device": "gpu"})
    cpu = add_run(split, noisy(y, 0.2, seed=2), model="tfidf-lr", valid=0.5)
    cpu.update_info(machine={"cpu": "x", "cpu_cores": 2, "device": "cpu"})
    old = add_run(split, noisy(y, 0.3, seed=3), model="fasttext", valid=0.4)  # recorded before machines were
    report = build_report(split.path, n_boot=50, n_perm=50)
    device = {r["name"]: r["device"] for r in report["rows"]}
    assert device == {gpu.name: "GPU NVIDIA H100", cpu.name: "CPU ×2", old.name: None}
    from nlpkit.report import render_markdown

    md = render_markdown(report)
    assert "| GPU NVIDIA H100 |" in md and "docs/s as each run measured it" in md


def test_measure_cost_times_every_saved_model_here_and_prices_give_money(tmp_path, runs_dir):
    split = tmp_path / "split"
    assert CliRunner().invoke(app, ["split", str(REPO / "data" / "agnews_sample.jsonl"), "--out", str(split)]).exit_code == 0
    assert CliRunner().invoke(app, ["baseline", str(split), "-m", "tfidf-lr", "-m", "majority"]).exit_code == 0
    report = build_report(split, n_boot=50, n_perm=50, measure_cost=True, prices={"cpu": 0.5})
    assert report["settings"]["measured_on"].startswith("CPU")
    base = next(r for r in report["rows"] if r["is_baseline"])
    for row in report["rows"]:
        assert row["measured"]["docs"] > 0 and row["predict_docs_per_s"] == row["measured"]["docs_per_s"]
        assert row["measured"]["docs_per_s_batch1"] > 0 and row["measured"]["docs_per_s_batch32"] > 0
        assert row["predict_docs_per_s_batch1"] == row["measured"]["docs_per_s_batch1"]
        assert row["cost_ratio"] == pytest.approx(base["predict_docs_per_s"] / row["predict_docs_per_s"])
        assert row["money"]["train"] == pytest.approx(row["fit_seconds"] / 3600 * 0.5)
        assert row["money"]["per_million_docs"] == pytest.approx(1e6 / row["predict_docs_per_s"] / 3600 * 0.5)
    result = CliRunner().invoke(app, ["report", str(split), "--measure-cost", "--price-per-hour", "CPU=0.5",
                                      "--n-boot", "50", "--n-perm", "50"])
    assert result.exit_code == 0, result.output
    assert "re-measured on this machine" in " ".join(result.output.split())


def test_money_needs_the_devices_price():
    row = {"fit_seconds": 7200.0, "predict_docs_per_s": 1000.0}
    assert money(row, {"gpu": 3.0}, predict_device="gpu", train_device="gpu") == {
        "train": pytest.approx(6.0), "per_million_docs": pytest.approx(1e6 / 1000 / 3600 * 3.0)}
    assert money(row, {"gpu": 3.0}, predict_device="cpu", train_device="cpu") == {"train": None, "per_million_docs": None}


@pytest.mark.parametrize("text, fragment", [
    ("CPU", "is not DEVICE=PRICE"), ("TPU=1", "is not DEVICE=PRICE"), ("CPU=cheap", "is not a price"),
    ("CPU=-1", "must be a number >= 0"), ("CPU=1,cpu=2", "twice"),
])
def test_bad_prices_are_one_line_errors(tmp_path, text, fragment):
    assert parse_prices("cpu=0.1, GPU=2") == {"cpu": 0.1, "gpu": 2.0}
    split = make_split(tmp_path / "split")
    add_run(split, noisy(y_test(split), 0.1, seed=1), model="tfidf-lr")
    result = CliRunner().invoke(app, ["report", str(split.path), "--price-per-hour", text])
    assert result.exit_code != 0 and fragment in result.output and "Traceback" not in result.output
    assert not (split.path / "report").exists()


def test_every_run_records_its_speed_one_document_at_a_time_and_in_batches_of_32(tmp_path, runs_dir):
    from nlpkit.report import build_report, render_markdown
    from nlpkit.runs import list_runs

    split = tmp_path / "split"
    assert CliRunner().invoke(app, ["split", str(REPO / "data" / "agnews_sample.jsonl"), "--out", str(split)]).exit_code == 0
    assert CliRunner().invoke(app, ["baseline", str(split), "-m", "tfidf-lr"]).exit_code == 0
    (run,) = list_runs(runs_dir)
    timings = run.info["timings"]
    # one call per document costs more than calls of 32, which cost more than one call for the whole part
    assert 0 < timings["predict_docs_per_s_batch1"] < timings["predict_docs_per_s_batch32"] < timings["predict_docs_per_s"]
    report = build_report(split, n_boot=50, n_perm=50)
    (row,) = report["rows"]
    assert row["predict_docs_per_s_batch1"] == timings["predict_docs_per_s_batch1"]
    assert row["predict_docs_per_s_batch32"] == timings["predict_docs_per_s_batch32"]
    assert "docs/s (1 at a time)" in render_markdown(report)

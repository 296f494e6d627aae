"""`nlpkit runs --remove RUN` and `--prune`: what is selected, confirmation, and never a half-removed run."""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from nlpkit import runs as runs_mod
from nlpkit.cli import app
from nlpkit.cli import runs as runs_cli
from nlpkit.runs import create_run, list_runs, load_run, remove_runs, select_runs

runner = CliRunner()


def cli(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def baseline_run(split) -> str:
    """Record one cheap run (the majority baseline) on ``split``; its name."""
    before = {r.name for r in list_runs()}
    result = cli("baseline", split.path, "-m", "majority")
    assert result.exit_code == 0, result.output
    (name,) = {r.name for r in list_runs()} - before
    return name


def names() -> set[str]:
    return {r.name for r in list_runs()}


def hidden(runs_dir) -> list[str]:
    return sorted(p.name for p in runs_dir.iterdir() if p.name.startswith("."))


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


# --- --remove ------------------------------------------------------------------------------------

def test_remove_by_name_path_and_prefix(single_split, runs_dir):
    a, b, c, keep = (baseline_run(single_split) for _ in range(4))
    result = cli("runs", "--remove", a, "--remove", runs_dir / b, "--remove", c[:-1], "--yes")
    assert result.exit_code == 0, result.output
    assert a in result.stdout and b in result.stdout and c in result.stdout and keep not in result.stdout
    assert "Removed 3 run(s)" in result.stderr
    assert names() == {keep}
    assert not (runs_dir / a).exists() and hidden(runs_dir) == []  # deleted, not only hidden


def test_remove_unknown_run_is_one_line_and_removes_nothing(single_split):
    a = baseline_run(single_split)
    line = one_error_line(cli("runs", "--remove", a, "--remove", "no-such-run", "--yes"))
    assert "run not found: no-such-run" in line and "nlpkit runs" in line
    assert names() == {a}  # every run is checked before any is removed


def test_remove_ambiguous_prefix_is_an_error(single_split):
    a, b = baseline_run(single_split), baseline_run(single_split)
    prefix = os.path.commonprefix([a, b])
    line = one_error_line(cli("runs", "--remove", prefix, "--yes"))
    assert "matches 2 runs" in line and "pass more of the name" in line
    assert names() == {a, b}


def test_remove_refuses_what_is_not_a_run_of_the_registry(single_split, runs_dir, tmp_path):
    a = baseline_run(single_split)
    other = tmp_path / "other_runs"
    with create_run("pretrain", "elsewhere", runs_root=other) as w:
        w.write_json("metrics.json", {})
    line = one_error_line(cli("runs", "--remove", w.path, "--yes"))
    assert "not inside the runs folder" in line and f"--runs-dir {other}" in line
    assert (other / w.name).is_dir()
    not_run = runs_dir / "notes"
    not_run.mkdir()
    (not_run / "keep.txt").write_text("mine")
    line = one_error_line(cli("runs", "--remove", not_run, "--yes"))
    assert "no run.json" in line
    assert (not_run / "keep.txt").is_file() and names() == {a}


# --- --prune -------------------------------------------------------------------------------------

def test_prune_by_role(single_split):
    trial, tuned, plain = (baseline_run(single_split) for _ in range(3))
    load_run(trial).update_info(role="tune-trial")
    load_run(tuned).update_info(role="tuned")
    result = cli("runs", "--prune", "--role", "tune-trial", "--yes")
    assert result.exit_code == 0, result.output
    assert names() == {tuned, plain}


def test_prune_by_age(single_split):
    old, new = baseline_run(single_split), baseline_run(single_split)
    load_run(old).update_info(created="2020-01-01T00:00:00Z")
    result = cli("runs", "--prune", "--older-than", "30d", "--yes")
    assert result.exit_code == 0, result.output
    assert names() == {new}


def test_prune_bad_age_is_one_line():
    line = one_error_line(cli("runs", "--prune", "--older-than", "30", "--yes"))
    assert "--older-than '30' is not an age" in line and "30d" in line


def test_prune_by_split(single_split, multi_split):
    on_single, on_multi = baseline_run(single_split), baseline_run(multi_split)
    result = cli("runs", "--prune", "--split", multi_split.path, "--yes")
    assert result.exit_code == 0, result.output
    assert on_multi in result.stdout and on_single not in result.stdout
    assert names() == {on_single}


def test_prune_by_kind(single_split):
    base = baseline_run(single_split)
    with create_run("pretrain", "tiny") as w:
        w.write_json("metrics.json", {})
    result = cli("runs", "--prune", "--kind", "pretrain", "--yes")
    assert result.exit_code == 0, result.output
    assert names() == {base}


def test_filters_combine(single_split):
    old_trial, new_trial, old_plain = (baseline_run(single_split) for _ in range(3))
    load_run(old_trial).update_info(role="tune-trial", created="2020-01-01T00:00:00Z")
    load_run(new_trial).update_info(role="tune-trial")
    load_run(old_plain).update_info(created="2020-01-01T00:00:00Z")
    selected = select_runs(role="tune-trial", older_than_seconds=86400)
    assert [r.name for r in selected] == [old_trial]
    # the same filters without --prune list what it would remove
    listed = cli("runs", "--role", "tune-trial", "--older-than", "1d", "--json")
    assert [row["name"] for row in json.loads(listed.stdout)] == [old_trial]


def test_prune_without_filter_is_an_error(single_split):
    a = baseline_run(single_split)
    line = one_error_line(cli("runs", "--prune", "--yes"))
    assert "--prune needs at least one filter" in line and "--role" in line and "--older-than" in line
    assert names() == {a}
    with pytest.raises(ValueError, match="at least one filter"):
        select_runs()


def test_prune_matching_nothing_removes_nothing(single_split):
    a = baseline_run(single_split)
    result = cli("runs", "--prune", "--role", "tune-trial", "--yes")
    assert result.exit_code == 0, result.output
    assert "match --role tune-trial; nothing to remove" in result.stderr
    assert names() == {a}


def test_dry_run_lists_and_removes_nothing(single_split):
    a, b = baseline_run(single_split), baseline_run(single_split)
    result = cli("runs", "--prune", "--kind", "baseline", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Would remove: 2 run(s)" in result.stdout and a in result.stdout and b in result.stdout
    assert "nothing removed" in result.stderr
    result = cli("runs", "--remove", a, "--dry-run")
    assert result.exit_code == 0, result.output
    assert names() == {a, b}


# --- confirmation --------------------------------------------------------------------------------

def test_without_yes_and_no_terminal_is_an_error(single_split):
    a = baseline_run(single_split)
    line = one_error_line(cli("runs", "--remove", a))  # CliRunner's stdin is not a terminal
    assert "stdin is not a terminal" in line and "--yes" in line
    assert names() == {a}


def test_confirmation_asked_on_a_terminal(single_split, monkeypatch):
    a, b = baseline_run(single_split), baseline_run(single_split)
    monkeypatch.setattr(runs_cli, "stdin_is_interactive", lambda: True)
    declined = cli("runs", "--remove", a, input="n\n")
    assert declined.exit_code == 1 and "Remove 1 run(s)?" in declined.stderr and "Nothing removed" in declined.stderr
    assert names() == {a, b}
    accepted = cli("runs", "--remove", a, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert names() == {b}


# --- atomicity -----------------------------------------------------------------------------------

def test_crash_between_rename_and_delete_leaves_no_visible_run(single_split, runs_dir, monkeypatch):
    a, b = baseline_run(single_split), baseline_run(single_split)

    def crash(path, *args, **kwargs):
        raise OSError(errno.EIO, "simulated crash", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(shutil, "rmtree", crash)
        result = cli("runs", "--remove", a, "--yes")
    assert result.exit_code == 1 and "simulated crash" in result.stderr
    assert names() == {b}  # gone from the registry at once: no half run is ever listed
    assert hidden(runs_dir) == [f".removing-{a}"]
    listed = cli("runs")
    assert a not in listed.stdout and "1 removed run folder(s) (.removing-*)" in listed.stderr
    # the next removal deletes the leftover, even one that selects nothing
    result = cli("runs", "--prune", "--role", "tune-trial", "--yes")
    assert result.exit_code == 0, result.output
    assert hidden(runs_dir) == [] and names() == {b}


def test_api_checks_every_run_before_removing_any(single_split, runs_dir):
    a, b = baseline_run(single_split), baseline_run(single_split)
    with pytest.raises(runs_mod.NlpkitError, match="not removed: .* hidden folder"):
        remove_runs([a, runs_mod.Run(path=runs_dir / ".resume", name=".resume", info={})])
    assert names() == {a, b}
    assert remove_runs([load_run(a)]) == [a]
    assert names() == {b}


def test_report_no_longer_sees_a_removed_run(single_split):
    keep, gone = baseline_run(single_split), baseline_run(single_split)

    def report_names():
        result = cli("report", single_split.path, "--json", "--n-boot", 10, "--n-perm", 10, "--baseline", keep)
        assert result.exit_code == 0, result.output
        return {row["name"] for row in json.loads(result.stdout)["rows"]}

    assert report_names() == {keep, gone}
    assert cli("runs", "--remove", gone, "--yes").exit_code == 0
    assert report_names() == {keep}

"""The CLI as a whole: every subcommand answers --help, and --help stays light."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from nlpkit.cli import COMMAND_MODULES, app, reflow

runner = CliRunner()
HEAVY = ["torch", "transformers", "sklearn", "pandas", "fasttext", "gensim", "tokenizers", "accelerate"]


def registered_commands() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)


def test_every_command_module_is_registered():
    names = registered_commands()
    for module in COMMAND_MODULES:
        assert module in names, f"nlpkit {module} is not registered"


def test_top_level_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in registered_commands():
        assert name in result.output


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES))
def test_subcommand_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_help_paragraphs_wrap_to_the_terminal():
    # Typer keeps a docstring's line breaks: a paragraph written at 100 columns came out broken
    # in the middle of a line ("... Without a valid part, one is" / "carved from train.").
    wide = CliRunner(env={"COLUMNS": "300"}).invoke(app, ["baseline", "--help"])
    assert wide.exit_code == 0, wide.output
    assert "Without a valid part, one is carved from train." in wide.output
    narrow = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["baseline", "--help"])
    lines = narrow.output.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert any(line.strip().startswith("valid part, one is carved from train.") for line in lines)


@pytest.mark.parametrize("argv", [["--help"]] + [[c, "--help"] for c in sorted(COMMAND_MODULES)])
def test_help_names_parameters_as_the_text_does(argv):
    # Typer 0.29 shows "<bool>" after flags that take no value and names arguments "{split_dir}"
    # where the commands' text says SPLIT_DIR.
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help " in result.output
    usage = result.output.split("Usage:")[1].splitlines()[0]
    assert not any(ch.islower() for ch in usage.partition("[OPTIONS]")[2]), usage


def test_missing_argument_is_named_in_capitals():
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 2
    assert "Missing argument 'SPLIT_DIR'" in result.output


def test_reflow():
    text = """First line.

        Second paragraph,
        on two lines.

        Third.
        \f
        Not for the help."""
    assert reflow(text) == "First line.\n\nSecond paragraph, on two lines.\n\nThird."
    assert reflow(None) is None and reflow("") == ""


@pytest.mark.parametrize("argv", [["--help"]] + [[c, "--help"] for c in sorted(COMMAND_MODULES)])
def test_help_imports_no_heavy_library(argv):
    # `nlpkit --help` must stay fast: the heavy libraries are imported by the commands that run.
    code = (
        "import sys, json; sys.argv = ['nlpkit'] + %r\n"
        "from nlpkit.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in %r if m in sys.modules)))" % (argv, HEAVY)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == [], f"nlpkit {' '.join(argv)} imported {loaded}"


def test_python_dash_m():
    proc = subprocess.run([sys.executable, "-m", "nlpkit", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "split" in proc.stdout


def test_version():
    from nlpkit import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"nlpkit {__version__}"


def test_dataset_options_are_converted_by_one_helper():
    # inspect, split, predict and pretrain all build DatasetOptions through this one function.
    from nlpkit.cli._common import DATASET_OPTION_PARAMS, dataset_options_from

    values = dict.fromkeys(DATASET_OPTION_PARAMS) | {
        "text_col": ["title", "body"], "label_cols": ["a,b", "c"], "encoding": "latin-1", "drop_empty": True,
    }
    opts = dataset_options_from(values)
    assert opts.text_cols == ("title", "body")
    assert opts.label_cols == ("a", "b", "c")
    assert (opts.encoding, opts.drop_empty, opts.format) == ("latin-1", True, None)
    for module in ("inspect", "split", "predict", "pretrain"):
        source = (Path(__file__).parent.parent / "nlpkit" / "cli" / f"{module}.py").read_text()
        assert "dataset_options_from(locals())" in source, module


_TERMINATED = """
import os, signal, time
import typer
from nlpkit.cli._common import cli_errors, terminate_as_interrupt

terminate_as_interrupt()
app = typer.Typer()

@app.command()
def main() -> None:
    with cli_errors(on_interrupt=lambda: "continue with --resume."):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)

app()
"""


def test_sigterm_unwinds_like_ctrl_c_with_exit_code_143():
    proc = subprocess.run([sys.executable, "-c", _TERMINATED], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip() == "Interrupted. continue with --resume."


def test_console_entry_point_takes_sigterm_as_an_interrupt():
    import signal

    import nlpkit.cli
    from nlpkit.cli._common import Terminated

    before = signal.getsignal(signal.SIGTERM)
    try:
        nlpkit.cli.app = lambda **_: 0  # only the set-up of main() is under test
        with pytest.raises(SystemExit) as done:
            nlpkit.cli.main()
        assert done.value.code == 0
        with pytest.raises(Terminated):
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, before)
        nlpkit.cli.app = app


@pytest.mark.parametrize("out", ["afile/x.jsonl", "afile/deeper/x.jsonl"])
def test_an_output_path_under_a_file_is_one_line(tmp_path, monkeypatch, single_split, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    assert runner.invoke(app, ["baseline", str(single_split.path), "-m", "majority"]).exit_code == 0
    run = next(p for p in (tmp_path / "runs").iterdir() if not p.name.startswith("."))
    (tmp_path / "new.jsonl").write_text('{"id": "1", "text": "good film"}\n', encoding="utf-8")
    result = runner.invoke(app, ["predict", str(run), "new.jsonl", "--out", out])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "afile is a file" in lines[0] and "Traceback" not in result.output
    assert (tmp_path / "afile").read_text(encoding="utf-8") == "x"


def test_path_error_names_the_blocking_file_and_the_fix(tmp_path):
    import errno

    from nlpkit.cli._common import path_error

    (tmp_path / "f").write_text("x", encoding="utf-8")
    assert path_error(FileExistsError(errno.EEXIST, "File exists", str(tmp_path / "f"))) == (
        f"{tmp_path / 'f'} is a file where a folder is needed; choose another path or move the file.")
    under = path_error(NotADirectoryError(errno.ENOTDIR, "Not a directory", str(tmp_path / "f" / "g" / "h")))
    assert under.startswith(f"{tmp_path / 'f'} is a file, so {tmp_path / 'f' / 'g' / 'h'} cannot be made under it")
    assert "choose a folder you can write to" in path_error(PermissionError(errno.EACCES, "Permission denied", "/x"))
    assert "no space left" in path_error(OSError(errno.ENOSPC, "No space left on device", "/x/y"))


@pytest.mark.parametrize("argv, fragment", [
    (["split", "data.jsonl", "--seed", "abc"], "Error: Invalid value for '--seed'"),
    (["baseline", "split", "--no-such-option"], "Error: No such option: --no-such-option"),
    (["no-such-command"], "Error: No such command 'no-such-command'"),
])
def test_usage_errors_are_one_line_through_the_entry_point(argv, fragment):
    proc = subprocess.run([sys.executable, "-m", "nlpkit", *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(fragment) and "--help'." in proc.stderr
    assert proc.stdout == ""


def test_entry_point_keeps_help_version_and_exit_codes(tmp_path):
    run = [sys.executable, "-m", "nlpkit"]
    assert subprocess.run([*run, "--version"], capture_output=True, text=True, timeout=120).returncode == 0
    bare = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2 and "split" in bare.stdout  # no command: the help, as Typer does
    failed = subprocess.run([*run, "inspect", str(tmp_path / "missing.jsonl")], capture_output=True, text=True,
                            timeout=120)
    assert failed.returncode == 1 and failed.stderr.startswith("Error: ")


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_a_bad_seed_is_the_same_one_line_error_in_every_command(command, tmp_path):
    """One seed check (nlpkit.seeds): pretrain --seed -1 was a numpy traceback."""
    from typer.testing import CliRunner

    from nlpkit.cli import app

    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n" * 10, encoding="utf-8")
    args = {"pretrain": ["pretrain", str(corpus), "--out", str(tmp_path / "o"), "--steps", "1"],
            "finetune": ["finetune", str(tmp_path), "--model", str(tmp_path)]}[command]
    result = CliRunner().invoke(app, [*args, "--seed", "-1"])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == "Error: --seed must be a whole number from 0 to 2147483647; got -1."

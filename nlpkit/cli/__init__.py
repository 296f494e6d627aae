"""The ``nlpkit`` command: one Typer app, one thin module per subcommand.

Command modules import only typer and nlpkit's light modules at import time, so that
``nlpkit --help`` stays fast; torch, transformers and scikit-learn are imported inside the
commands that need them.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="nlpkit",
    help="Text-classification experiments: split, baseline, pretrain, finetune, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# One line per subcommand module; each module exposes ``register(app)``.
COMMAND_MODULES = ["inspect", "split", "baseline", "predict", "pretrain", "finetune", "report", "runs"]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"nlpkit.cli.{name}")
        except ModuleNotFoundError as exc:  # a subcommand not written yet
            if exc.name == f"nlpkit.cli.{name}":
                continue
            raise
        module.register(app)


def _version(value: bool) -> None:
    if value:
        from nlpkit import __version__

        typer.echo(f"nlpkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Text-classification experiments: split, baseline, pretrain, finetune, report."""


_register_all()


def main() -> None:
    """Console-script entry point."""
    app()

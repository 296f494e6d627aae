"""The ``nlpkit`` command: one Typer app, one thin module per subcommand.

Command modules import only typer and nlpkit's light modules at import time, so that
``nlpkit --help`` stays fast; torch, transformers and scikit-learn are imported inside the
commands that need them.
"""

from __future__ import annotations

import importlib
from inspect import cleandoc  # (nlpkit.cli.inspect, a subcommand, takes the name "inspect" here)

import typer
from typer.core import TyperCommand, TyperGroup


class _HelpNames:
    """Help that names parameters as the docstrings do.

    Typer 0.29 prints a type after every option, ``<bool>`` even after a flag that takes no value
    (``--json <bool>``, ``--help <bool>``), and names a required argument ``{split_dir}`` where the
    command's text says SPLIT_DIR. Here a flag shows no type and an argument is named in capitals,
    in the usage line, the help panel and its errors ("Missing argument 'SPLIT_DIR'").
    """

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if param.metavar is not None:
                continue
            if getattr(param, "is_flag", False):
                param.metavar = ""
            elif param.param_type_name == "argument":
                param.metavar = param.name.upper()
        return params


class Command(_HelpNames, TyperCommand):
    """Every nlpkit subcommand (see :class:`_HelpNames`)."""


class Group(_HelpNames, TyperGroup):
    """The ``nlpkit`` command itself (see :class:`_HelpNames`)."""


app = typer.Typer(
    cls=Group,
    name="nlpkit",
    help="Text-classification experiments: split, baseline, pretrain, finetune, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# One line per subcommand module; each module exposes ``register(app)``.
COMMAND_MODULES = ["inspect", "split", "baseline", "predict", "pretrain", "finetune", "curve", "report", "runs"]


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"nlpkit.cli.{name}")
        except ModuleNotFoundError as exc:  # a subcommand not written yet
            if exc.name == f"nlpkit.cli.{name}":
                continue
            raise
        module.register(app)
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):  # app.command() fills in TyperCommand
            info.cls = Command
        info.help = reflow(info.help if info.help is not None else getattr(info.callback, "__doc__", None))


def reflow(text: str | None) -> str | None:
    """``text`` (a docstring) with each paragraph on one line, for the terminal to wrap.

    Typer keeps the line breaks inside a docstring's later paragraphs, so lines written at 100
    columns came out ragged in an 80-column terminal: each wrapped, then broke again where the
    source line ended. Paragraphs are separated by blank lines; what follows a form feed (Click's
    mark for text kept out of the help) is dropped, as Typer would.
    """
    if not text:
        return text
    paragraphs = cleandoc(text).partition("\f")[0].split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs if paragraph.strip())


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


def _is(exc: BaseException, name: str) -> bool:
    """Whether ``exc`` is of Typer's (vendored) Click exception class ``name``, or a subclass."""
    return any(c.__name__ == name for c in type(exc).__mro__)


def main() -> None:
    """Console-script entry point (``nlpkit`` and ``python -m nlpkit``).

    Usage errors (an unknown option, a value of the wrong type, a missing argument) are printed as
    one ``Error:`` line naming the command's --help, like every other error, instead of Typer's
    multi-line box; the exit code stays Click's 2.
    """
    import sys

    from nlpkit.cli._common import terminate_as_interrupt

    terminate_as_interrupt()
    try:
        code = app(standalone_mode=False)
    except Exception as exc:
        if _is(exc, "NoArgsIsHelpError"):  # `nlpkit` alone: the help is already printed
            sys.exit(exc.exit_code)
        if _is(exc, "Abort"):
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        if not _is(exc, "ClickException"):
            raise
        ctx = getattr(exc, "ctx", None)
        where = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
        message = " ".join(exc.format_message().split())
        typer.echo(f"Error: {message.rstrip('.')}{where}.", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)

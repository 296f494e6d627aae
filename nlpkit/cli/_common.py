"""Shared pieces of the CLI: dataset options, consoles, and the error boundary."""

from __future__ import annotations

import contextlib
import errno
import sys
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer

from nlpkit.errors import NlpkitError

# Results go to stdout, progress and warnings to stderr (spaCy `evaluate` habit).
_out_console = None
_err_console = None


# Width of tables when stdout is a file or a pipe: rich assumes 80 columns there and wraps or
# truncates every cell; a table is only as wide as its content, so this is a ceiling, not padding.
PIPED_WIDTH = 200


def out():
    """Rich console on stdout, for results (at least ``PIPED_WIDTH`` wide when piped)."""
    global _out_console
    if _out_console is None:
        from rich.console import Console

        _out_console = Console(soft_wrap=True)
        if not _out_console.is_terminal:
            _out_console = Console(soft_wrap=True, width=max(_out_console.width, PIPED_WIDTH))
    return _out_console


def err():
    """Rich console on stderr, for progress, warnings and errors."""
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True, soft_wrap=True)
    return _err_console


def warn(message: str) -> None:
    """A warning line on stderr; ``message`` is plain text (a label or path like ``[/x]`` is not markup)."""
    from rich.markup import escape

    err().print(f"[yellow]Warning:[/yellow] {escape(message)}", markup=True, highlight=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error on stderr and return the ``typer.Exit`` to raise."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``kill``, a batch scheduler) taken as an interrupt.

    Raised in the main thread, it unwinds like Ctrl-C, so every ``finally`` and every temporary run
    folder is cleaned up the same way; the exit code is 143 (128 + 15), as the shell reports it.
    """

    exit_code = 128 + 15


def terminate_as_interrupt() -> None:
    """Make SIGTERM raise :class:`Terminated` (installed by the console entry point only)."""
    import signal

    def _raise(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, _raise)


@contextlib.contextmanager
def cli_errors(on_interrupt: Callable[[], str | None] | None = None) -> Iterator[None]:
    """The error boundary: library errors become one line on stderr and a non-zero exit.

    ``on_interrupt`` may return a line to print after "Interrupted." (e.g. how to resume).
    """
    try:
        yield
    except NlpkitError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt as exc:
        hint = on_interrupt() if on_interrupt is not None else None
        typer.echo("Interrupted." + (f" {hint}" if hint else ""), err=True)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    except OSError as exc:
        from nlpkit._io import is_full_disk

        if exc.filename is None and not is_full_disk(exc):
            raise
        raise fail(path_error(exc)) from None


def path_error(exc: OSError) -> str:
    """One line for an OSError on a path the user gave (an --out under a file, a read-only folder, a full disk)."""
    from nlpkit._io import is_full_disk

    if is_full_disk(exc):  # (a failed write may name no file)
        where = f" while writing {exc.filename}" if exc.filename is not None else ""
        return f"no space left on the device{where}; free some space or pass another --out (or --runs-dir)."
    path = Path(exc.filename)
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in [path, *path.parents] if p.is_file()), None)
        if blocker == path:
            return f"{path} is a file where a folder is needed; choose another path or move the file."
        if blocker is not None:
            return f"{blocker} is a file, so {path} cannot be made under it; choose another path or move the file."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: {exc.strerror}; choose a folder you can write to, or change its permissions."
    if exc.errno == errno.ENOENT:
        return f"not found: {path}; check the path."
    return f"{path}: {exc.strerror or exc}; check the path."


# --- dataset options, shared by every command that reads user data -------------------------

FormatOpt = Annotated[
    Optional[str],
    typer.Option("--format", help="Input format: csv, tsv, jsonl, json, parquet, fasttext. Default: from the extension."),
]
TextColOpt = Annotated[
    Optional[list[str]],
    typer.Option("--text-col", help="Text column; repeat to join several (e.g. title and body). Default: text."),
]
LabelColOpt = Annotated[
    Optional[str], typer.Option("--label-col", help="Label column (one value, a list, or a delimited string). Default: labels / label.")
]
LabelColsOpt = Annotated[
    Optional[list[str]], typer.Option("--label-cols", help="Several 0/1 label columns, one per label; repeat or comma-separate.")
]
IdColOpt = Annotated[Optional[str], typer.Option("--id-col", help="Id column. Default: id, else row numbers.")]
LabelSepOpt = Annotated[Optional[str], typer.Option("--label-sep", help="Separator inside a delimited label string, e.g. '|'.")]
TaskOpt = Annotated[
    Optional[str], typer.Option("--task", help="Force 'single' or 'multi' label. Default: inferred from the data.")
]
EncodingOpt = Annotated[str, typer.Option("--encoding", help="Text encoding of the input file.")]
DropEmptyOpt = Annotated[
    bool, typer.Option("--drop-empty", help="Drop rows with empty text or no label (reported) instead of failing.")
]
NaValuesOpt = Annotated[
    Optional[str],
    typer.Option("--na-values", help="Comma-separated label values read as missing, in every format. "
                 "Default: NaN,nan,null,NULL (an empty cell always is); --na-values '' keeps 'NaN' etc. as labels.",
                 show_default=False),
]


def dataset_options(
    *,
    format: Optional[str] = None,
    text_col: Optional[list[str]] = None,
    label_col: Optional[str] = None,
    label_cols: Optional[list[str]] = None,
    id_col: Optional[str] = None,
    label_sep: Optional[str] = None,
    task: Optional[str] = None,
    encoding: str = "utf-8",
    drop_empty: bool = False,
    na_values: Optional[str] = None,
):
    """Build the dataset layer's options object from CLI values (validated there)."""
    from nlpkit.data import DatasetOptions

    cols: list[str] = []
    for value in label_cols or []:
        cols.extend(c.strip() for c in value.split(",") if c.strip())
    # --na-values 'NaN,null' -> ("NaN", "null"); '' -> ("",): only the empty cell is missing
    markers = {} if na_values is None else {"na_values": tuple(dict.fromkeys(v.strip() for v in na_values.split(",")))}
    return DatasetOptions(
        format=format,
        text_cols=tuple(text_col) if text_col else None,
        label_col=label_col,
        label_cols=tuple(cols),
        id_col=id_col,
        label_sep=label_sep,
        task=task,
        encoding=encoding,
        drop_empty=drop_empty,
        **markers,
    )


DATASET_OPTION_PARAMS = (
    "format", "text_col", "label_col", "label_cols", "id_col", "label_sep", "task", "encoding", "drop_empty",
    "na_values",
)


@contextlib.contextmanager
def user_warnings() -> Iterator[None]:
    """Show the warnings meant for the user -- the dataset layer's (:class:`nlpkit.data.DataWarning`)
    and a checkpoint folder's (:class:`nlpkit.hf.checkpoint.CheckpointWarning`) -- on stderr as
    one line each, each message once; other warnings go where they went before."""
    import warnings

    from nlpkit.data import DataWarning
    from nlpkit.hf.checkpoint import CheckpointWarning

    categories = (DataWarning, CheckpointWarning)
    shown: set[str] = set()
    with warnings.catch_warnings():
        for category in categories:
            warnings.simplefilter("always", category)
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not issubclass(category, categories):
                previous(message, category, filename, lineno, file, line)
            elif str(message) not in shown:
                shown.add(str(message))
                warn(str(message))

        warnings.showwarning = show
        yield


def dataset_options_from(values: dict):
    """:class:`nlpkit.data.DatasetOptions` from a command's parsed values (pass ``locals()``).

    Every command declares the options above (Typer needs them in each signature) and converts them
    here, so they mean the same everywhere.
    """
    return dataset_options(**{name: values[name] for name in DATASET_OPTION_PARAMS})


def ensure_exists(path: Path, what: str = "file") -> None:
    if not path.exists():
        raise NlpkitError(f"{what} not found: {path}. Check the path.")


def is_tty() -> bool:
    return sys.stderr.isatty()

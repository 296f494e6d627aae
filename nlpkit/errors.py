"""User-facing errors: one line saying what went wrong, where, and how to fix it."""

from __future__ import annotations


class NlpkitError(Exception):
    """An error caused by the user's input or options.

    The CLI prints ``str(error)`` as a single line prefixed with ``Error:`` and exits with
    ``exit_code``; no traceback is shown. Library code raises it instead of printing or exiting.
    """

    exit_code = 1

    def __init__(self, message: str):
        # Keep messages to one line: the CLI contract is "one line, actionable".
        super().__init__(" ".join(str(message).split("\n")))


class DataError(NlpkitError):
    """Bad dataset content or layout (file, line/row, column named in the message)."""


class ConfigError(NlpkitError):
    """Options that do not make sense together, detected before any work starts."""

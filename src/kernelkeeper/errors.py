"""The error types a person sees, and the one rule for exit codes.

0 done; 1 a problem the message explains (``UserError``); 2 bad usage: an unknown
command or option, or an option value that cannot be right (``UsageError``, and
argparse's own errors); 130 interrupted. Declining at a prompt is not an error:
nothing changes and the exit code is 0.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Something the person can fix: the message says what happened, the hint what to do."""

    exit_code = EXIT_PROBLEM

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class UsageError(UserError):
    """An option value that cannot be right (``--scope bogus``, ``--name "Bad Name"``): exit 2."""

    exit_code = EXIT_USAGE

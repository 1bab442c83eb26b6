"""The one error type a person sees, and its exit codes."""

from __future__ import annotations


class UserError(Exception):
    """Something the person can fix: the message says what happened, the hint what to do."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

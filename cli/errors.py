"""The error type every sub-command raises for a mistake the user can fix."""

from __future__ import annotations


class CommandError(Exception):
    """A failure the user can fix: printed as one line, never as a traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

"""Errors the CLI reports, each with the exit code a script can test."""
from __future__ import annotations

from typing import Any, Optional

# Exit codes (docs/cli.md): 2 is argparse's own for a bad command line.
OK = 0
FAILED = 1
AUTH = 3  # not logged in, or the token was refused
NOT_FOUND = 4
REFUSED = 5  # bad input, a conflict or a limit: the provider said no
UNAVAILABLE = 6  # the provider or its Docker engine cannot be reached


class CliError(Exception):
    def __init__(self, message: str, code: int = FAILED, detail: Optional[Any] = None, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail = detail
        self.status = status  # the provider's HTTP status, when it answered


def code_for_status(status: int) -> int:
    if status in (401, 403):
        return AUTH
    if status == 404:
        return NOT_FOUND
    if 400 <= status < 500:
        return REFUSED
    return UNAVAILABLE

"""Typed errors of the dockpool core.

Each adapter maps them once: the Ansible modules to ``fail_json``, the HTTP
service to a status code and a JSON body, the watchdog to a log line.
"""
from __future__ import annotations

from typing import Any, Optional


class DockpoolError(Exception):
    """Base class: a message for people, and the input field it concerns."""

    http_status = 500

    def __init__(self, message: str, field: Optional[str] = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.detail = detail

    def as_dict(self) -> dict:
        body: dict = {"error": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.detail is not None:
            body["detail"] = self.detail
        return body


class InvalidInput(DockpoolError):
    """The caller sent something malformed or outside what is allowed."""

    http_status = 400


class NotFound(DockpoolError):
    """The named instance or image does not exist."""

    http_status = 404


class Conflict(DockpoolError):
    """The request clashes with what exists (a name taken, a change not applicable in place)."""

    http_status = 409


class CapacityExhausted(DockpoolError):
    """No free host port or CPU core is left for the request."""

    http_status = 409


class Misconfigured(DockpoolError):
    """The provider's settings ask for what its engine cannot do (a runtime not registered):
    only its operator can mend it."""

    http_status = 500


class EngineUnavailable(DockpoolError):
    """The Docker engine cannot be reached or failed unexpectedly."""

    http_status = 503


class Busy(DockpoolError):
    """A bounded resource (peer checks) is in full use; the caller may retry later."""

    http_status = 503

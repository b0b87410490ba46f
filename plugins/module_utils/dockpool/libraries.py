"""The engine side's third-party libraries, in one place, optional at import time.

The core also travels without them: in the client's distribution (which uses its sizes and
errors), and to hosts Ansible manages, where a module must say which package is missing rather
than fail to load (community.docker's convention; ansible-test's import check). So importing any
core module never fails; the first call that needs the engine or the host's counters does, with
:class:`MissingLibrary`, which the modules turn into Ansible's standard message.
"""
from __future__ import annotations

import traceback
from types import ModuleType
from typing import Optional

from .errors import DockpoolError

try:
    import docker
    import docker.errors
    import docker.types
    import requests.exceptions
except ImportError:
    docker = None
    requests = None  # type: ignore[assignment]  # as docker: the callers check docker first
    _DOCKER_TRACEBACK: Optional[str] = traceback.format_exc()
else:
    _DOCKER_TRACEBACK = None

try:
    import psutil
except ImportError:
    psutil = None
    _PSUTIL_TRACEBACK: Optional[str] = traceback.format_exc()
else:
    _PSUTIL_TRACEBACK = None

try:  # optional for good: no library means no GPU to offer (gpus.read_gpus)
    import pynvml
except ImportError:
    pynvml = None


# What the rest of the core imports from here (the libraries themselves, or None).
__all__ = ["MissingLibrary", "docker", "docker_sdk", "host_counters", "psutil", "pynvml", "requests"]


class MissingLibrary(DockpoolError):
    """A Python package the engine side needs is not installed on this host."""

    def __init__(self, package: str, import_traceback: Optional[str]) -> None:
        super().__init__(f"the Python package {package!r} is needed on this host (pip install {package})")
        self.package = package
        self.import_traceback = import_traceback


def docker_sdk() -> ModuleType:
    """The docker SDK, or MissingLibrary."""
    if docker is None:
        raise MissingLibrary("docker", _DOCKER_TRACEBACK)
    return docker


def host_counters() -> ModuleType:
    """psutil, or MissingLibrary."""
    if psutil is None:
        raise MissingLibrary("psutil", _PSUTIL_TRACEBACK)
    return psutil

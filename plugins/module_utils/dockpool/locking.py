"""The placement lock: one creation at a time chooses ports and cores.

An flock on a shared file, so the API's threads, a playbook run and the CLI on
the same host exclude each other (each ``open`` is its own lock owner).
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def placement_lock(path: str) -> Iterator[None]:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    # Read-only is enough for flock, so users other than the file's creator can lock it too.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock

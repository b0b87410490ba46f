"""Locks between processes on one host: flocks on shared files, so the API's threads, a
playbook run, the CLI and the watchdog's cron passes exclude each other (each ``open`` is
its own lock owner; closing the file releases it, also when a process dies).

The placement lock: one creation at a time chooses ports and cores. The watchdog's lock:
one pass at a time, a pass that finds the previous one still running skips.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def file_lock(path: str, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on ``path``; yields False (without it) when ``wait`` is False
    and another holder has it."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    # Read-only is enough for flock, so users other than the file's creator can lock it too.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def placement_lock(path: str) -> Iterator[None]:
    with file_lock(path):
        yield

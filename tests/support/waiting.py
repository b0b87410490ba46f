"""Waiting for something a background pass does, bounded."""
from __future__ import annotations

import time
from typing import Callable


def wait_until(done: Callable[[], object], failure: str, seconds: float = 30, every: float = 0.5) -> None:
    """Ask ``done`` every ``every`` seconds until it is true; fail with ``failure`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, failure
        time.sleep(every)

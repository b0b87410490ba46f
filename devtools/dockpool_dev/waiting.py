"""Waiting for a condition, bounded: what tests poll real processes with."""
from __future__ import annotations

import time
from typing import Any, Callable


def until(condition: Callable[[], Any], limit: float = 60.0, failure: str = "") -> Any:
    """Poll ``condition`` until it returns something true (returned), for ``limit`` seconds at most;
    ``failure`` says what did not happen."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:  # bounded
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{failure}: not within {limit} s" if failure else f"not within {limit} s")

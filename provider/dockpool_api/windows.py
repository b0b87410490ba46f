"""Sliding windows: at most ``limit`` events per key within ``window`` seconds, and how long
until the next one fits (what a 429's Retry-After says). Failed logins per address
(auth.py) and replica refreshes per instance and per client (fleet/replicas.py) count here.
Kept in memory: a restarted service starts every window afresh."""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable


class SlidingWindows:
    def __init__(self, limit: int, window: float, max_keys: int = 10000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.max_keys, self.clock = limit, window, max_keys, clock
        self._events: dict[str, deque] = {}
        self.lock = threading.Lock()  # callers that check several windows at once hold it around them

    def _recent(self, key: str, now: float) -> deque:
        events = self._events.setdefault(key, deque())
        while events and now - events[0] >= self.window:
            events.popleft()
        return events

    def wait(self, key: str) -> float:
        """Seconds until one more event of ``key`` fits (0.0: now)."""
        now = self.clock()
        events = self._recent(key, now)
        return 0.0 if len(events) < self.limit else self.window - (now - events[0])

    def add(self, key: str) -> None:
        if len(self._events) >= self.max_keys:
            self._events.clear()  # bounded memory under a spray of keys
        self._recent(key, self.clock()).append(self.clock())

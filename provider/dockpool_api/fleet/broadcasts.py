"""News to piggyback on exchanges, each sent a bounded number of times (memberlist's broadcast queue).

Whatever changes (a member's newer signed entry, a suspicion) is put here once and rides on
the next exchanges, the least-sent first, until it has gone out ``limit`` times, about
``multiplier * log10(N + 1)`` (epidemic spreading reaches all N w.h.p. in that many sends per
member). Newer news about the same subject replaces the older. A quiet fleet's queue is
empty, so its exchanges carry nothing but their summary.
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from typing import Any

MULTIPLIER = 4  # memberlist's RetransmitMult


def retransmit_limit(members: int, multiplier: int = MULTIPLIER) -> int:
    return multiplier * max(1, math.ceil(math.log10(members + 1)))


@dataclass
class _Item:
    key: str
    message: dict[str, Any]
    size: int
    sent: int = 0


class Broadcasts:
    """A bounded queue of news, safe to use from many threads."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._items: dict[str, _Item] = {}
        self._lock = threading.Lock()

    def put(self, key: str, message: dict[str, Any]) -> None:
        """Queue ``message`` about ``key`` (a member's name and the kind of news), replacing older news of it."""
        size = len(json.dumps(message, separators=(",", ":")))
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = _Item(key, message, size)
            while len(self._items) > self.capacity:  # the most sent goes first
                del self._items[max(self._items.values(), key=lambda i: i.sent).key]

    def take(self, budget: int, members: int) -> list[dict[str, Any]]:
        """News for one message, at most ``budget`` bytes, the least sent first; each counts as sent once more."""
        limit = retransmit_limit(members)
        out: list[dict[str, Any]] = []
        with self._lock:
            for item in sorted(self._items.values(), key=lambda i: i.sent):
                if item.size > budget:
                    continue
                budget -= item.size
                out.append(item.message)
                item.sent += 1
                if item.sent >= limit:
                    del self._items[item.key]
        return out

    def __len__(self) -> int:
        return len(self._items)

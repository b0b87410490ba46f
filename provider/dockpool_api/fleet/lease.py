"""The lease a provider holds on its replicated instances (issue 34, item 11).

A holder may restore a replica once the instance's provider has left its table, which takes at
least the fleet's expiry of silence. A provider cut off from the fleet in both directions hears
nothing of that and would keep running its copy beside the restored one. So a provider runs a
replicated instance only while its replica's holder answers it: each holder is asked when a
quarter of the expiry passed without word from it, and once it has been silent for half the
expiry the instances it holds replicas of are stopped (replicas.Replicator.keep_leases), before
the holder can have expired this provider. They run again when the holder answers that it did
not restore them (reconcile), or when the holder has left the fleet while the rest of the fleet
still answers this provider (it died: nothing of it can be restored anywhere).
"""
from __future__ import annotations

import threading
import time
from typing import Callable


class Lease:
    """When each holder last answered this provider; silence is counted from this start."""

    def __init__(self, expiry: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.expiry, self.clock = expiry, clock
        self._since = clock()
        self._heard: dict[str, float] = {}
        self._lock = threading.Lock()

    def heard(self, holder: str) -> None:
        with self._lock:
            self._heard[holder] = self.clock()

    def silent(self, holder: str) -> float:
        """Seconds since ``holder`` last answered (since this start, if it has not yet)."""
        with self._lock:
            return self.clock() - self._heard.get(holder, self._since)

    def to_renew(self, holder: str) -> bool:
        """Whether to ask ``holder`` now: a quarter of the expiry without word from it."""
        return self.silent(holder) >= self.expiry / 4

    def lapsed(self, holder: str) -> bool:
        """Whether its instances must stop: half the expiry of silence, the other half being the
        margin before the holder can have expired this provider."""
        return self.silent(holder) >= self.expiry / 2

    def pause(self) -> float:
        """How often the lease is kept: often enough that a lapse is acted on well within the margin."""
        return max(0.1, min(5.0, self.expiry / 10))

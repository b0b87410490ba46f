"""The failure detector's state: which members are suspected, since when, and when they are dead.

SWIM as memberlist runs it: a member that does not answer an exchange, nor a probe asked of
others on its behalf, is *suspected* at the version it holds. The suspicion spreads as news;
the suspected member, hearing it, refutes it by signing a newer version of its own entry
(which only it can do). A suspicion not refuted within ``timeout`` seconds of when it was
first raised makes the member dead everywhere at about the same moment: relayers pass on
how long ago it was raised (``age``), as the entries' ages were passed on before.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Suspicion:
    name: str
    version: int
    since: float  # on this provider's clock


class Suspicions:
    """Suspicions held by one provider (its own and those heard); not thread-safe: the caller locks."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._held: dict[str, Suspicion] = {}

    def raise_(self, name: str, version: int, now: float, age: float = 0.0) -> bool:
        """Suspect ``name`` at ``version``, raised ``age`` seconds ago (bounded by the timeout);
        whether this is news (not already suspected at that version or later)."""
        held = self._held.get(name)
        since = now - min(max(0.0, age), self.timeout)
        if held is not None and held.version >= version:
            if since < held.since and held.version == version:  # heard it was raised earlier: keep the earliest
                self._held[name] = Suspicion(name, version, since)
            return False
        self._held[name] = Suspicion(name, version, since)
        return True

    def refuted(self, name: str, version: int) -> None:
        """``name`` is held at ``version`` now: a suspicion of an older version is over."""
        held = self._held.get(name)
        if held is not None and version > held.version:
            del self._held[name]

    def clear(self, name: str) -> None:
        self._held.pop(name, None)

    def get(self, name: str) -> Suspicion | None:
        return self._held.get(name)

    def dead(self, now: float) -> list[Suspicion]:
        """The suspicions that have run their time: their members are dead."""
        return [s for s in self._held.values() if now - s.since >= self.timeout]

    def __contains__(self, name: str) -> bool:
        return name in self._held

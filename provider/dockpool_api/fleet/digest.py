"""Summaries of a peer table, so that an exchange sends only what the other side lacks or holds older.

A table is a set of (name, version). Its summary is kept up to date as entries come and go,
never recomputed: each (name, version) hashes to 64 bits, each name falls into one of
``BUCKETS`` buckets, and a bucket's hash is the XOR of its members' hashes (so adding,
removing or renewing one entry costs two XORs). The root is the XOR of the buckets.

An exchange climbs down only as far as the tables differ (Cassandra's digests, with
Merkle-style levels in front): equal roots end it at once, whatever the table's size;
otherwise the bucket hashes say which buckets differ; only for those are names and versions
sent, and then only the entries one side lacks or holds older.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

BUCKETS = 64


def entry_hash(name: str, version: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{name}\0{version}".encode(), digest_size=8).digest(), "big")


def bucket_of(name: str) -> int:
    return hashlib.blake2b(name.encode(), digest_size=2).digest()[0] % BUCKETS


def _hex(value: int) -> str:
    return f"{value:016x}"


@dataclass
class Summary:
    """The (name, version) pairs of one table, with their bucket and root hashes."""

    _versions: dict[str, int] = field(default_factory=dict)
    _buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    _names: list[dict[str, int]] = field(default_factory=lambda: [{} for _ in range(BUCKETS)])

    def put(self, name: str, version: int) -> None:
        """``name`` is now held at ``version`` (replacing any other version of it)."""
        old = self._versions.get(name)
        if old == version:
            return
        bucket = bucket_of(name)
        if old is not None:
            self._buckets[bucket] ^= entry_hash(name, old)
        self._buckets[bucket] ^= entry_hash(name, version)
        self._versions[name] = version
        self._names[bucket][name] = version

    def drop(self, name: str) -> None:
        old = self._versions.pop(name, None)
        if old is not None:
            bucket = bucket_of(name)
            self._buckets[bucket] ^= entry_hash(name, old)
            del self._names[bucket][name]

    def copy(self) -> "Summary":
        return Summary(dict(self._versions), list(self._buckets), [dict(names) for names in self._names])

    def version(self, name: str) -> int | None:
        return self._versions.get(name)

    def __len__(self) -> int:
        return len(self._versions)

    def root(self) -> str:
        value = 0
        for bucket in self._buckets:
            value ^= bucket
        return _hex(value)

    def buckets(self) -> list[str]:
        return [_hex(b) for b in self._buckets]

    def differing(self, theirs: list[str]) -> list[int]:
        """The buckets whose hash differs from ``theirs`` (every bucket if the list is not one of ours)."""
        if len(theirs) != BUCKETS:
            return list(range(BUCKETS))
        return [i for i, (mine, other) in enumerate(zip(self.buckets(), theirs)) if mine != other]

    def digests(self, buckets: list[int]) -> dict[str, int]:
        """Names and versions held in ``buckets``."""
        out: dict[str, int] = {}
        for bucket in buckets:
            if 0 <= bucket < BUCKETS:
                out.update(self._names[bucket])
        return out


def compare(mine: dict[str, int], theirs: dict[str, int]) -> tuple[list[str], list[str]]:
    """Over the same buckets: the names the other side lacks or holds older (to send), and the
    names this side lacks or holds older (to ask for)."""
    send = [name for name, version in mine.items() if theirs.get(name, -1) < version]
    want = [name for name, version in theirs.items() if mine.get(name, -1) < version]
    return send, want

"""Fleet membership: the peer table with last-heard times, expiry and signed entries.

Gossip-style failure detection (van Renesse et al., as in Serf's push-pull): every
provider signs its own entry with a version that only grows (its clock in ms, never
compared with anyone else's), and re-signs it every exchange round. A receiver takes
an entry's data and renews it only when the version is newer than the one it holds
and the signature checks against the key it pinned when it first verified the peer
directly; so a relayed entry never overwrites fresher data, and nobody but the peer
itself can renew or rewrite it. Relayers pass on how long ago they heard the version
(``age``), so every table expires a dead peer about ``expiry`` seconds after its last
round, however far the news travelled. An expired peer is remembered (tombstone) for
another ``expiry`` so an old version relayed late cannot bring it back; a restarted
provider comes back with a newer version.

P2PRC peers sign nothing: they are renewed only when this provider hears them directly.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .atomicfile import read_json, write_json
from .errors import Busy, InvalidInput
from .peers import FIELDS, NetworkRule, peer_key, validate_table, verify_peer

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
    HAS_CRYPTOGRAPHY = True
except ImportError:  # the modules never sign; only the API service needs it
    HAS_CRYPTOGRAPHY = False

log = logging.getLogger("dockpool.membership")
Key = tuple[str, str]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def signed_bytes(entry: dict[str, Any], version: int, key: str) -> bytes:
    """What a signature covers: the P2PRC fields (normalised), the version and the key."""
    fields = {name: entry[name] for name in FIELDS}
    return json.dumps([fields, version, key], sort_keys=True, separators=(",", ":")).encode()


def signature_valid(entry: dict[str, Any]) -> bool:
    record = entry.get("dockpool")
    if not record or not HAS_CRYPTOGRAPHY:
        return False
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(record["key"], validate=True))
        public.verify(base64.b64decode(record["signature"], validate=True),
                      signed_bytes(entry, record["version"], record["key"]))
        return True
    except (InvalidSignature, ValueError):
        return False


class Signer:
    """This provider's Ed25519 key, kept in a file of its own (0600) across restarts."""

    def __init__(self, path: str) -> None:
        if not HAS_CRYPTOGRAPHY:
            raise InvalidInput("fleet membership needs the cryptography library (python3-cryptography)", "peers_file")
        try:
            with open(path, "rb") as handle:
                self._key = Ed25519PrivateKey.from_private_bytes(handle.read())
        except FileNotFoundError:
            self._key = Ed25519PrivateKey.generate()
            raw = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())  # Debian 12's 38 lacks *_raw()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
        self.public = _b64(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, entry: dict[str, Any], version: int) -> dict[str, Any]:
        signature = self._key.sign(signed_bytes(entry, version, self.public))
        return {**entry, "dockpool": {"key": self.public, "version": version, "signature": _b64(signature), "age": 0.0}}


@dataclass
class Member:
    entry: dict[str, Any]  # validated P2PRC fields, plus the signed "dockpool" record when it has one
    heard: Optional[float]  # time.monotonic() of the newest version (or direct contact); None: not since start
    answered: Optional[bool] = None  # how our last exchange with it went; None: not asked yet

    @property
    def version(self) -> int:
        record = self.entry.get("dockpool")
        return record["version"] if record else 0

    @property
    def key(self) -> Optional[str]:
        record = self.entry.get("dockpool")
        return record["key"] if record else None


@dataclass
class Membership:
    """The provider's view of the fleet, kept in one JSON file; safe to use from many threads."""

    path: str
    me: dict[str, Any]
    max_peers: int = 256
    rule: NetworkRule = field(default_factory=NetworkRule)
    verify: Optional[Callable[[dict[str, Any]], bool]] = None
    expiry: float = 60.0  # seconds without a newer version before a peer leaves the table
    checks_at_once: int = 4  # direct checks of new peers at once, for the whole service (of its 8 workers)
    checks_per_merge: int = 16  # new peers checked per merge; the rest come again with the next exchange
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(self.checks_at_once)
        self._signer = Signer(os.path.join(os.path.dirname(os.path.abspath(self.path)), "membership.key"))
        self._version = 0
        self.me = validate_table({"ip_address": [self.me]}, 1)[0]
        self._own = self._signer.sign(self.me, self._next_version())
        self._members: dict[Key, Member] = self._load()
        self._dead: dict[Key, tuple[int, float]] = {}  # tombstones: version at expiry, when
        self._start = self.clock()
        if self.verify is None:
            self.verify = lambda entry: verify_peer(entry, self.rule, expected_key=_key_of(entry))

    @property
    def public_key(self) -> str:
        return self._signer.public

    def _next_version(self) -> int:
        # The clock only orders this provider's own versions; a clock set back still moves forward.
        self._version = max(self._version + 1, time.time_ns() // 1_000_000)
        return self._version

    def _load(self) -> dict[Key, Member]:
        try:
            entries = validate_table(read_json(self.path), self.max_peers)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, InvalidInput) as exc:
            aside = f"{self.path}.corrupt"
            log.error("peer table %s is unreadable (%s); kept as %s, starting again from this provider alone",
                      self.path, getattr(exc, "message", exc), aside)
            os.replace(self.path, aside)
            write_json(self.path, {"ip_address": []})
            return {}
        # Known before the restart, not heard since: tried, not served, until they answer.
        return {peer_key(e): Member(e, None) for e in entries if peer_key(e) != peer_key(self.me)}

    def _save(self) -> None:
        write_json(self.path, {"ip_address": [m.entry for m in self._members.values()]}, mode=0o644)

    # ---- what is served -------------------------------------------------------------------------

    def _live(self, now: float) -> list[Member]:
        return [m for m in self._members.values() if m.heard is not None and now - m.heard <= self.expiry]

    def table(self) -> dict[str, list[dict[str, Any]]]:
        """This provider and the live peers, each with how long ago it was heard (``age``)."""
        now = self.clock()
        with self._lock:
            peers = [_with_age(m.entry, now - m.heard) for m in self._live(now)]
            return {"ip_address": [self._own] + peers}

    def p2prc_table(self) -> dict[str, list[dict[str, Any]]]:
        """The same table in P2PRC's shape exactly."""
        return {"ip_address": [{k: e[k] for k in FIELDS} for e in self.table()["ip_address"]]}

    def members(self) -> list[dict[str, Any]]:
        """The live peers as the status page and the CLI show them."""
        now = self.clock()
        with self._lock:
            return [{"name": m.entry["Name"], "address": peer_key(m.entry)[0], "port": int(m.entry["ServerPort"]),
                     "heard_seconds_ago": round(now - m.heard, 1), "answers": m.answered,
                     "signed": m.key is not None} for m in self._live(now)]

    # ---- the exchange round ---------------------------------------------------------------------

    def heartbeat(self) -> None:
        """A new round: re-sign our entry with a newer version, and expire the silent."""
        now = self.clock()
        with self._lock:
            self._own = self._signer.sign(self.me, self._next_version())
            gone = [k for k, m in self._members.items()
                    if (m.heard is None and now - self._start > self.expiry)
                    or (m.heard is not None and now - m.heard > self.expiry)]
            for k in gone:
                member = self._members.pop(k)
                self._dead[k] = (member.version, now)
                log.info("peer %s (%s) expired: not heard from for %.0f s", member.entry["Name"], k[0], self.expiry)
            for k in [k for k, (_v, when) in self._dead.items() if now - when > self.expiry]:
                del self._dead[k]
            if gone:
                self._save()

    def targets(self, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` peers chosen at random among the live and the not yet confirmed."""
        now = self.clock()
        with self._lock:
            pool = [m.entry for m in self._members.values() if m.heard is None or now - m.heard <= self.expiry]
        return random.sample(pool, min(count, len(pool)))

    def answered(self, entry: dict[str, Any], ok: bool) -> None:
        """How a direct exchange went; a P2PRC peer that answered is heard by that."""
        with self._lock:
            member = self._members.get(peer_key(entry))
            if member is None:
                return
            member.answered = ok
            if ok and member.key is None:
                member.heard = self.clock()

    # ---- merging a table ------------------------------------------------------------------------

    def merge(self, data: Any) -> dict[str, list[dict[str, Any]]]:
        """Validate a table, renew what is newer and signed, keep new peers that answer; return ours."""
        incoming = validate_table(data, self.max_peers)
        now = self.clock()
        new: dict[Key, dict[str, Any]] = {}
        with self._lock:
            for entry in incoming:
                k = peer_key(entry)
                if k == peer_key(self.me):
                    continue
                member = self._members.get(k)
                if member is None:
                    dead = self._dead.get(k)
                    if dead is None or _version(entry) > dead[0]:
                        new.setdefault(k, entry)
                elif _renews(member, entry):
                    member.entry = _without_age(entry)
                    member.heard = max(member.heard or 0.0, now - min(_age(entry), self.expiry))
            room = self.max_peers - len(self._members)
        candidates = list(new.values())[: max(0, min(room, self.checks_per_merge))]
        answered = self._verified([e for e in candidates if e.get("dockpool") is None or signature_valid(e)])
        with self._lock:
            added = []
            for entry in answered:
                k = peer_key(entry)
                if len(self._members) < self.max_peers and k not in self._members:
                    self._members[k] = Member(_without_age(entry), self.clock(), answered=True)
                    self._dead.pop(k, None)
                    added.append(entry)
            if added:
                self._save()
                log.info("added %d peers: %s", len(added), ", ".join(e["Name"] or peer_key(e)[0] for e in added))
        return self.table()

    def _verified(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The entries whose peers answer directly, checked on at most the free check slots."""
        slots = 0
        while slots < len(entries) and self._checks.acquire(blocking=False):
            slots += 1
        if entries and not slots:
            raise Busy("peer checks: this provider is checking as many peers as it allows; try again shortly",
                       "ip_address", {"retry_after": 5})
        try:
            if not entries:
                return []
            with ThreadPoolExecutor(max_workers=slots) as pool:
                return [e for e, ok in zip(entries, pool.map(self.verify, entries)) if ok]
        finally:
            for _slot in range(slots):
                self._checks.release()


def _version(entry: dict[str, Any]) -> int:
    record = entry.get("dockpool")
    return record["version"] if record else 0


def _key_of(entry: dict[str, Any]) -> Optional[str]:
    record = entry.get("dockpool")
    return record["key"] if record else None


def _age(entry: dict[str, Any]) -> float:
    record = entry.get("dockpool")
    return record["age"] if record else 0.0


def _renews(member: Member, entry: dict[str, Any]) -> bool:
    """Only the peer's own newer signed version, under the key pinned when it was verified."""
    return (member.key is not None and _key_of(entry) == member.key and _version(entry) > member.version
            and signature_valid(entry))


def _with_age(entry: dict[str, Any], age: float) -> dict[str, Any]:
    if entry.get("dockpool") is None:
        return entry
    return {**entry, "dockpool": {**entry["dockpool"], "age": round(max(0.0, age), 3)}}


def _without_age(entry: dict[str, Any]) -> dict[str, Any]:
    return _with_age(entry, 0.0)

"""Fleet membership: the peer table with last-heard times, expiry and signed entries.

Two tiers, never mixed:

- **Members** are providers of the fleet. Each signs its own entry with a version that only
  grows (its clock in ms, never compared with anyone else's) and re-signs it every exchange
  round. A new member is taken only once it has answered directly over the fleet's mutual
  TLS with a certificate naming it (the ``verify`` given: tls.py) and the key its entry
  was signed with; it is keyed by that name, so a member that changes address stays the
  same member. A receiver renews it only on a newer version signed by the pinned key, so a
  relayed entry never overwrites fresher data, and nobody else can renew or rewrite it.
  Relayers pass on how long ago they heard the version (``age``), so every table expires a
  dead member about ``expiry`` seconds after its last round; an expired (or removed) member
  is remembered (tombstone) for another ``expiry`` so an old version relayed late cannot
  bring it back; a restarted provider comes back with a newer version.
- **P2PRC peers** are what P2PRC servers and clients (and dockpool's clients) post: shown
  in P2PRC's table, renewed only when this provider hears them directly, never exchanged
  with, never sent a credential, never made a member, never a move's source or target.

A provider never lists itself (by name, key or address) in either tier.
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

from dockpool.atomicfile import read_json, write_json
from dockpool.errors import Busy, InvalidInput
from dockpool.networks import NetworkRule

from .admission import PeerAdmission
from .wire import FIELDS, FLAGS, peer_key, server_info, validate_table

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


def signed_bytes(entry: dict[str, Any], version: int, key: str, fleet_port: int, draining: bool = False) -> bytes:
    """What a signature covers: the P2PRC fields (normalised), the version, the key, the fleet port,
    and whether the provider is draining (only when it is: an entry without it reads as before)."""
    fields = {name: entry[name] for name in FIELDS}
    # Signed in the spelling providers signed before flags became booleans, so that members of
    # both versions keep verifying each other while a fleet is upgraded one provider at a time.
    fields.update({name: "True" if entry[name] else "False" for name in FLAGS})
    signed: list[Any] = [fields, version, key, fleet_port] + ([{"draining": True}] if draining else [])
    return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()


def signature_valid(entry: dict[str, Any]) -> bool:
    record = entry.get("dockpool")
    if not record or not HAS_CRYPTOGRAPHY:
        return False
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(record["key"], validate=True))
        public.verify(base64.b64decode(record["signature"], validate=True),
                      signed_bytes(entry, record["version"], record["key"], record["fleet_port"],
                                   record.get("draining", False)))
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

    def sign(self, entry: dict[str, Any], version: int, fleet_port: int, draining: bool = False) -> dict[str, Any]:
        signature = self._key.sign(signed_bytes(entry, version, self.public, fleet_port, draining))
        return {**entry, "dockpool": {"key": self.public, "version": version, "signature": _b64(signature), "age": 0.0,
                                      "fleet_port": fleet_port, **({"draining": True} if draining else {})}}


@dataclass
class Member:
    entry: dict[str, Any]  # validated P2PRC fields, plus the signed "dockpool" record for a member
    heard: Optional[float]  # time.monotonic() of the newest version (or direct contact); None: not since start
    answered: Optional[bool] = None  # how our last exchange with it went; None: not asked yet

    @property
    def version(self) -> int:
        return _version(self.entry)

    @property
    def key(self) -> Optional[str]:
        return _key_of(self.entry)


@dataclass
class Membership:
    """The provider's view of the fleet, kept in one JSON file; safe to use from many threads.

    ``verify`` checks a new member directly (over the fleet's mutual TLS, its certificate's
    name and its signing key); ``verify_p2prc`` checks a P2PRC peer (its ``/server_info``)."""

    path: str
    me: dict[str, Any]
    max_peers: int = 256
    rule: NetworkRule = field(default_factory=NetworkRule)
    verify: Optional[Callable[[dict[str, Any]], bool]] = None
    expiry: float = 60.0  # seconds without a newer version before a peer leaves the table
    checks_at_once: int = 4  # direct checks of new peers at once, for the whole service (of its 8 workers)
    checks_per_merge: int = 16  # new peers checked per merge; the rest come again with the next exchange
    clock: Callable[[], float] = time.monotonic
    fleet_port: int = 8444
    verify_p2prc: Optional[Callable[[dict[str, Any]], bool]] = None
    draining: Callable[[], bool] = lambda: False  # whether this provider is draining, asked each round
    admission: Optional[PeerAdmission] = None  # which P2PRC peers may be asked at all; None: ``rule`` alone

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(self.checks_at_once)
        self._signer = Signer(os.path.join(os.path.dirname(os.path.abspath(self.path)), "membership.key"))
        self._version = 0
        self.me = validate_table({"ip_address": [self.me]}, 1)[0]
        self._own = self._signed_own()
        self._members: dict[str, Member] = {}  # by name: the certificate's, so an address may change
        self._p2prc: dict[Key, Member] = {}  # by address and port
        self._load()
        self._dead: dict[Any, tuple[int, float]] = {}  # tombstones (name or address key): version, when
        self._start = self.clock()
        if self.verify is None:
            self.verify = lambda entry: False  # no fleet certificate: this provider has no members
        if self.admission is None:
            self.admission = PeerAdmission(self.rule)
        self._never: dict[Key, str] = {}  # P2PRC peers dropped for good (this provider itself, refused): why
        if self.verify_p2prc is None:
            self.verify_p2prc = self._ask_p2prc

    @property
    def public_key(self) -> str:
        return self._signer.public

    def _next_version(self) -> int:
        # The clock only orders this provider's own versions; a clock set back still moves forward.
        self._version = max(self._version + 1, time.time_ns() // 1_000_000)
        return self._version

    def _is_me(self, entry: dict[str, Any]) -> bool:
        return (entry["Name"] == self.me["Name"] or _key_of(entry) == self.public_key
                or peer_key(entry) == peer_key(self.me))

    def _load(self) -> None:
        try:
            entries = validate_table(read_json(self.path), self.max_peers)
        except FileNotFoundError:
            return
        except (OSError, ValueError, InvalidInput) as exc:
            aside = f"{self.path}.corrupt"
            log.error("peer table %s is unreadable (%s); kept as %s, starting again from this provider alone",
                      self.path, getattr(exc, "message", exc), aside)
            os.replace(self.path, aside)
            write_json(self.path, {"ip_address": []})
            return
        # Known before the restart, not heard since: tried, not served, until they answer.
        for e in entries:
            if self._is_me(e):
                continue
            if e.get("dockpool") is not None:
                self._members[e["Name"]] = Member(e, None)
            else:
                self._p2prc[peer_key(e)] = Member(e, None)

    def _save(self) -> None:
        entries = [m.entry for m in self._members.values()] + [m.entry for m in self._p2prc.values()]
        write_json(self.path, {"ip_address": entries}, mode=0o644)

    # ---- what is served -------------------------------------------------------------------------

    def _live(self, tier: dict[Any, Member], now: float) -> list[Member]:
        return [m for m in tier.values() if m.heard is not None and now - m.heard <= self.expiry]

    def table(self) -> dict[str, list[dict[str, Any]]]:
        """This provider and the live members, each with how long ago it was heard (``age``):
        what members exchange."""
        now = self.clock()
        with self._lock:
            peers = [_with_age(m.entry, now - m.heard) for m in self._live(self._members, now)]
            return {"ip_address": [self._own] + peers}

    def p2prc_table(self) -> dict[str, list[dict[str, Any]]]:
        """P2PRC's table, in its shape exactly: this provider, the members, and the live P2PRC peers."""
        now = self.clock()
        with self._lock:
            entries = [self._own] + [m.entry for m in self._live(self._members, now)]
            entries += [m.entry for m in self._live(self._p2prc, now)]
        return {"ip_address": [{k: e[k] for k in FIELDS} for e in entries]}

    def member(self, name: Any) -> Optional[dict[str, Any]]:
        """The live member called ``name`` (its certificate's name), or None."""
        now = self.clock()
        with self._lock:
            found = self._members.get(name) if isinstance(name, str) else None
            return found.entry if found and found.heard is not None and now - found.heard <= self.expiry else None

    def members(self) -> list[dict[str, Any]]:
        """The live peers of both tiers as the status page and the CLI show them."""
        now = self.clock()
        with self._lock:
            return [{"name": m.entry["Name"], "address": peer_key(m.entry)[0], "port": int(m.entry["ServerPort"]),
                     "heard_seconds_ago": round(now - m.heard, 1), "answers": m.answered,
                     "tier": tier, "signed": tier == "member",
                     "draining": bool((m.entry.get("dockpool") or {}).get("draining"))}
                    for tier, group in (("member", self._members), ("p2prc", self._p2prc))
                    for m in self._live(group, now)]

    # ---- the exchange round ---------------------------------------------------------------------

    def _signed_own(self) -> dict[str, Any]:
        """Our entry signed anew: a newer version, and whether we are draining now."""
        return self._signer.sign(self.me, self._next_version(), self.fleet_port, self.draining())

    def renew(self) -> None:
        """Re-sign our entry now: its state (draining) changed."""
        with self._lock:
            self._own = self._signed_own()

    def heartbeat(self) -> None:
        """A new round: re-sign our entry with a newer version, and expire the silent."""
        now = self.clock()
        with self._lock:
            self._own = self._signed_own()
            gone = []
            for tier in (self._members, self._p2prc):
                for k in [k for k, m in tier.items() if (m.heard is None and now - self._start > self.expiry)
                          or (m.heard is not None and now - m.heard > self.expiry)]:
                    member = tier.pop(k)
                    self._dead[k] = (member.version, now)
                    gone.append(member)
                    log.info("peer %s (%s) expired: not heard from for %.0f s", member.entry["Name"],
                             peer_key(member.entry)[0], self.expiry)
            for k in [k for k, (_v, when) in self._dead.items() if now - when > self.expiry]:
                del self._dead[k]
            if gone:
                self._save()

    def targets(self, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` members chosen at random among the live and the not yet confirmed."""
        return self._sample(self._members, count)

    def p2prc_targets(self, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` P2PRC peers to ask whether they are still there."""
        return self._sample(self._p2prc, count)

    def _sample(self, tier: dict[Any, Member], count: int) -> list[dict[str, Any]]:
        now = self.clock()
        with self._lock:
            pool = [m.entry for m in tier.values() if m.heard is None or now - m.heard <= self.expiry]
        return random.sample(pool, min(count, len(pool)))

    def answered(self, entry: dict[str, Any], ok: bool) -> None:
        """How a direct exchange went; a P2PRC peer that answered is heard by that."""
        with self._lock:
            signed = entry.get("dockpool") is not None
            member = (self._members.get(entry["Name"]) if signed else self._p2prc.get(peer_key(entry)))
            if member is None:
                return
            member.answered = ok
            if not signed and peer_key(entry) in self._never:  # itself, or no longer admitted: dropped
                del self._p2prc[peer_key(entry)]
                self._save()
                return
            if ok and not signed:
                member.heard = self.clock()

    def remove(self, ref: str) -> list[str]:
        """An operator's removal: the members and P2PRC peers called ``ref`` or at address ``ref``.
        A removed member that is alive comes back after its tombstone (``expiry``) with a newer
        version; a provider leaves the fleet for good when its certificate stops being trusted."""
        now = self.clock()
        with self._lock:
            gone = []
            for tier in (self._members, self._p2prc):
                for k in [k for k, m in tier.items() if ref in (m.entry["Name"], peer_key(m.entry)[0])]:
                    member = tier.pop(k)
                    self._dead[k] = (member.version, now)
                    gone.append(member.entry["Name"] or peer_key(member.entry)[0])
            if gone:
                self._save()
                log.info("removed by an administrator: %s", ", ".join(gone))
        return gone

    # ---- merging a table ------------------------------------------------------------------------

    def merge(self, data: Any) -> dict[str, list[dict[str, Any]]]:
        """A member's table (over the fleet's TLS): renew what is newer and signed, take new members
        that answer as members; entries without a signature are ignored. Returns ours."""
        incoming = [e for e in validate_table(data, self.max_peers) if e.get("dockpool") is not None]
        now = self.clock()
        new: dict[str, dict[str, Any]] = {}
        with self._lock:
            for entry in incoming:
                if self._is_me(entry):
                    continue
                member = self._members.get(entry["Name"])
                if member is None:
                    dead = self._dead.get(entry["Name"])
                    if dead is None or _version(entry) > dead[0]:
                        new.setdefault(entry["Name"], entry)
                elif _renews(member, entry):
                    member.entry = _without_age(entry)
                    member.heard = max(member.heard or 0.0, now - min(_age(entry), self.expiry))
            room = self.max_peers - len(self._members)
        candidates = [e for e in list(new.values())[: max(0, min(room, self.checks_per_merge))] if signature_valid(e)]
        self._add(self._members, self._verified(candidates, self.verify), lambda e: e["Name"])
        return self.table()

    def merge_p2prc(self, data: Any) -> dict[str, list[dict[str, Any]]]:
        """What P2PRC peers and clients post: P2PRC peers that answer, kept apart from the members
        (a signature they carry is dropped: posting never makes a member). An entry this provider
        may not ask (admission.py) is dropped, never contacted; a post with nothing new besides is
        refused, naming the field and why. Returns P2PRC's table."""
        incoming = [{k: e[k] for k in FIELDS} for e in validate_table(data, self.max_peers)]
        with self._lock:
            names = {m.entry["Name"] for m in self._members.values()}
            addresses = {peer_key(m.entry) for m in self._members.values()}
            fresh = [(i, e) for i, e in enumerate(incoming)
                     if not self._is_me(e) and e["Name"] not in names and peer_key(e) not in addresses
                     and peer_key(e) not in self._p2prc and peer_key(e) not in self._dead and peer_key(e) not in self._never]
            room = self.max_peers - len(self._p2prc)
        new = self._admitted(fresh)
        candidates = list(new.values())[: max(0, min(room, self.checks_per_merge))]
        self._add(self._p2prc, self._verified(candidates, self.verify_p2prc), peer_key)
        return self.p2prc_table()

    def _admitted(self, fresh: list[tuple[int, dict[str, Any]]]) -> dict[Key, dict[str, Any]]:
        """The posted entries (with their index) this provider may ask, by address and port."""
        admitted: dict[Key, dict[str, Any]] = {}
        refused: list[dict[str, str]] = []
        members = self._member_addresses()
        for index, entry in fresh:
            why = self.admission.refusal(entry, members) if self.admission else None
            if why is None:
                admitted[peer_key(entry)] = entry
            else:
                refused.append({"field": f"ip_address[{index}].{why[0]}", "problem": why[1]})
        if refused and not admitted:
            raise InvalidInput(f"{refused[0]['field']}: {refused[0]['problem']}", refused[0]["field"],
                               {"refused": refused[:16]})
        for each in refused:
            log.info("posted peer not taken: %s: %s", each["field"], each["problem"])
        return admitted

    def _member_addresses(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(peer_key(m.entry)[0], m.entry["Name"]) for m in self._members.values()]

    def _ask_p2prc(self, entry: dict[str, Any]) -> bool:
        """A P2PRC peer's check, when posted and each round: still admitted (the engine's networks
        change), answering as a P2PRC server, and not this provider under another address (its
        /server_info names this provider's key): then it is dropped and never asked again."""
        why = self.admission.refusal(entry, self._member_addresses()) if self.admission else None
        info = server_info(entry, self.rule) if why is None else None
        extra = (info or {}).get("dockpool")
        if isinstance(extra, dict) and extra.get("membership_key") == self.public_key:
            why = ("IPV4", "it is this provider itself, under another address (its /server_info names this provider)")
        if why is not None:
            with self._lock:
                self._never[peer_key(entry)] = why[1]
                while len(self._never) > self.max_peers:
                    del self._never[next(iter(self._never))]
            log.info("P2PRC peer %s:%s dropped: %s", *peer_key(entry), why[1])
            return False
        return info is not None

    def _add(self, tier: dict[Any, Member], answered: list[dict[str, Any]], key: Callable[[dict], Any]) -> None:
        with self._lock:
            added = []
            for entry in answered:
                k = key(entry)
                if len(tier) < self.max_peers and k not in tier and not self._is_me(entry):
                    tier[k] = Member(_without_age(entry), self.clock(), answered=True)
                    self._dead.pop(k, None)
                    added.append(entry)
            if added:
                self._save()
                log.info("added %d peers: %s", len(added), ", ".join(e["Name"] or peer_key(e)[0] for e in added))

    def _verified(self, entries: list[dict[str, Any]], verify: Any) -> list[dict[str, Any]]:
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
                return [e for e, ok in zip(entries, pool.map(verify, entries)) if ok]
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


def fleet_port(entry: dict[str, Any]) -> int:
    return int(entry["dockpool"]["fleet_port"])


def _renews(member: Member, entry: dict[str, Any]) -> bool:
    """Only the member's own newer signed version, under the key pinned when it was verified."""
    return (member.key is not None and _key_of(entry) == member.key and _version(entry) > member.version
            and signature_valid(entry))


def _with_age(entry: dict[str, Any], age: float) -> dict[str, Any]:
    if entry.get("dockpool") is None:
        return entry
    return {**entry, "dockpool": {**entry["dockpool"], "age": round(max(0.0, age), 3)}}


def _without_age(entry: dict[str, Any]) -> dict[str, Any]:
    return _with_age(entry, 0.0)

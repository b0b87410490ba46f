"""Fleet membership: the peer table with last-heard times, expiry and signed entries.

Two tiers, never mixed:

- **Members** are providers of the fleet. Each signs its own entry with a version that only
  grows (its clock in ms, never compared with anyone else's) and re-signs it only when the
  entry changes (a drain, a restart, a refuted suspicion), never as a heartbeat. A new
  member is taken only once it has answered directly over the fleet's mutual TLS with a
  certificate naming it (the ``verify`` given: tls.py) and the key its entry was signed with;
  it is keyed by that name, so a member that changes address stays the same member. A
  receiver renews it only on a newer version signed by the pinned key, so a relayed entry
  never overwrites fresher data, and nobody else can renew or rewrite it.
  A member is live until a suspicion of it (suspicion.py: raised by a member it failed to
  answer, spread by gossip.py) runs ``expiry`` seconds unrefuted; then it is dead in every
  table at about the same moment, and remembered (tombstone) for another ``expiry`` so an
  old version relayed late cannot bring it back; a restarted provider comes back with a newer
  version. The live members' names and versions are kept summarised (digest.py), so two
  tables are compared by one hash.
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
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Sequence

from dockpool.atomicfile import read_json, write_json
from dockpool.errors import Busy, InvalidInput
from dockpool.networks import NetworkRule

from . import relays
from .admission import PeerAdmission
from .digest import Summary, bucket_of
from .members import Heard, Member, Seal
from .relays import RelayPath
from .suspicion import Suspicions
from .wire import p2prc_fields, p2prc_table, parse_entry, parse_table, render_entry, render_table, server_info

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
    HAS_CRYPTOGRAPHY = True
except ImportError:  # the modules never sign; only the API service needs it
    HAS_CRYPTOGRAPHY = False

log = logging.getLogger("dockpool.membership")
Key = tuple[str, int]  # a P2PRC peer's: its address and API port


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def signed_bytes(member: Member, version: int, key: str, fleet_port: int, draining: bool = False,
                 paths: Sequence[RelayPath] = ()) -> bytes:
    """What a signature covers: the P2PRC fields (as the wire spells them), the version, the key, the
    fleet port, and whether the provider is draining and which relays reach it (each only when so:
    an entry without them reads as before)."""
    fields = p2prc_fields(member)
    # Signed in the spelling providers signed before flags became booleans, so that members of
    # both versions keep verifying each other while a fleet is upgraded one provider at a time.
    fields.update({name: "True" if fields[name] else "False" for name in ("NAT", "ProxyServer")})
    signed: list[Any] = ([fields, version, key, fleet_port] + ([{"draining": True}] if draining else [])
                         + relays.signed_part(paths))
    return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()


_VERIFIED: dict[bytes, None] = {}  # signed bytes + signature already verified (one entry reaches us many times)
_VERIFIED_MOST = 65536


def signature_valid(member: Member) -> bool:
    seal = member.seal
    if seal is None or not HAS_CRYPTOGRAPHY:
        return False
    signed = signed_bytes(member, seal.version, seal.key, seal.fleet_port, seal.draining, seal.relays)
    seen = signed + seal.signature.encode()
    if seen in _VERIFIED:
        return True
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(seal.key, validate=True))
        public.verify(base64.b64decode(seal.signature, validate=True), signed)
    except (InvalidSignature, ValueError):
        return False
    if len(_VERIFIED) >= _VERIFIED_MOST:
        _VERIFIED.clear()
    _VERIFIED[seen] = None
    return True


class Signer:
    """This provider's Ed25519 key, kept in a file of its own (0600) across restarts (None: in memory only)."""

    def __init__(self, path: Optional[str]) -> None:
        if not HAS_CRYPTOGRAPHY:
            raise InvalidInput("fleet membership needs the cryptography library (python3-cryptography)", "peers_file")
        if path is None:
            self._key = Ed25519PrivateKey.generate()
            self.public = _b64(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
            return
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

    def sign(self, member: Member, version: int, fleet_port: int, draining: bool = False,
             paths: Sequence[RelayPath] = ()) -> Member:
        """``member``'s P2PRC fields sealed by this provider's key at ``version``."""
        signature = self._key.sign(signed_bytes(member, version, self.public, fleet_port, draining, paths))
        return replace(member, seal=Seal(self.public, version, _b64(signature), fleet_port, draining, relays=tuple(paths)))


@dataclass
class Known:
    """A peer held in the table: its newest entry (its seal's age 0: ages are rendered when sent),
    and what this provider knows of it."""

    member: Member
    heard: Optional[float]  # time.monotonic() of the last news of it or contact with it; None: not since start
    answered: Optional[bool] = None  # how our last exchange with it went; None: not asked yet

    @property
    def version(self) -> int:
        return self.member.version


@dataclass
class Membership:
    """The provider's view of the fleet, kept in one JSON file (``path`` None: in memory, as the
    simulation in bench/fleet_sim.py runs it); safe to use from many threads.

    ``verify`` checks a new member directly (over the fleet's mutual TLS, its certificate's
    name and its signing key); ``verify_p2prc`` checks a P2PRC peer (its ``/server_info``)."""

    path: Optional[str]
    me: Member
    max_peers: int = 256
    rule: NetworkRule = field(default_factory=NetworkRule)
    verify: Optional[Callable[[Member], bool]] = None
    expiry: float = 60.0  # seconds a suspicion of a member runs unrefuted (a P2PRC peer: unheard) before it leaves
    checks_at_once: int = 4  # direct checks of new peers at once, for the whole service (of its 8 workers)
    checks_per_merge: int = 16  # new peers checked per merge; the rest come again with the next exchange
    clock: Callable[[], float] = time.monotonic
    fleet_port: int = 8444
    verify_p2prc: Optional[Callable[[Member], bool]] = None
    draining: Callable[[], bool] = lambda: False  # whether this provider is draining, asked each round
    admission: Optional[PeerAdmission] = None  # which P2PRC peers may be asked at all; None: ``rule`` alone
    relays: tuple[RelayPath, ...] = ()  # behind NAT: the relays this provider is reached through (signed)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(self.checks_at_once)
        self._signer = Signer(None if self.path is None
                              else os.path.join(os.path.dirname(os.path.abspath(self.path)), "membership.key"))
        self._version = 0
        self.me = self.me.unsealed()
        self._summary = Summary()  # the live members and this provider, by name and version
        self._suspicions = Suspicions(self.expiry)
        self._unheard: set[str] = set()  # members loaded from the file, until the expiry after start
        self._own = self._signed_own()
        self._members: dict[str, Known] = {}  # by name: the certificate's, so an address may change
        self._p2prc: dict[Key, Known] = {}  # by address and port
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

    def _is_me(self, member: Member) -> bool:
        return member.name == self.me.name or member.key == self.public_key or member.peer_key == self.me.peer_key

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            entries = parse_table(read_json(self.path), self.max_peers)
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
            if e.signed:
                self._members[e.name] = Known(e.aged(0.0), None)
                self._unheard.add(e.name)
            else:
                self._p2prc[e.peer_key] = Known(e, None)

    def _save(self) -> None:
        if self.path is None:
            return
        entries = [k.member for k in self._members.values()] + [k.member for k in self._p2prc.values()]
        write_json(self.path, render_table(entries), mode=0o644)

    # ---- what is served -------------------------------------------------------------------------

    def _live(self, tier: dict[Any, Known], now: float) -> list[Known]:
        """Members heard since start (they leave by suspicion); P2PRC peers heard within the expiry."""
        if tier is self._members:
            return [m for m in tier.values() if m.heard is not None]
        return [m for m in tier.values() if m.heard is not None and now - m.heard <= self.expiry]

    def table(self) -> dict[str, list[dict[str, Any]]]:
        """This provider and the live members, each with how long ago it was heard (``age``):
        what members exchange."""
        now = self.clock()
        with self._lock:
            peers = [k.member.aged(now - k.heard) for k in self._live(self._members, now) if k.heard is not None]
            return render_table([self._own] + peers)

    def p2prc_table(self) -> dict[str, list[dict[str, Any]]]:
        """P2PRC's table, in its shape exactly: this provider, the members, and the live P2PRC peers."""
        now = self.clock()
        with self._lock:
            entries = [self._own] + [k.member for k in self._live(self._members, now)]
            entries += [k.member for k in self._live(self._p2prc, now)]
        return p2prc_table(entries)

    def member(self, name: Any) -> Optional[Member]:
        """The live member called ``name`` (its certificate's name), or None."""
        now = self.clock()
        with self._lock:
            found = self._members.get(name) if isinstance(name, str) else None
            return found.member if found and found in self._live(self._members, now) else None

    def members(self) -> list[Heard]:
        """The live peers of both tiers (members.view renders them as the status page and the CLI show them)."""
        now = self.clock()
        with self._lock:
            return [Heard(k.member, tier, now - k.heard, k.answered)
                    for tier, group in (("member", self._members), ("p2prc", self._p2prc))
                    for k in self._live(group, now) if k.heard is not None]

    def takers(self) -> list[Member]:
        """The live members that take new instances (not draining)."""
        return [h.member for h in self.members() if h.tier == "member" and not h.member.draining]

    # ---- the exchange round ---------------------------------------------------------------------

    def _signed_own(self) -> Member:
        """Our entry signed anew: a newer version, and whether we are draining now."""
        own = self._signer.sign(self.me, self._next_version(), self.fleet_port, self.draining(), self.relays)
        self._summary.put(own.name, own.version)
        return own

    def renew(self) -> dict[str, Any]:
        """Re-sign our entry now: its state (draining) changed, or a suspicion of us is refuted."""
        with self._lock:
            self._own = self._signed_own()
            return render_entry(self._own)

    def own(self) -> dict[str, Any]:
        """Our signed entry as the wire carries it."""
        return render_entry(self._own)

    def expire(self) -> list[str]:
        """A new round: members whose suspicion ran out, members known before a restart and not
        heard since, and silent P2PRC peers leave; old tombstones are forgotten. Returns the
        names of the members that left."""
        now = self.clock()
        with self._lock:
            gone: list[tuple[dict[Any, Known], Any]] = [
                (self._members, s.name) for s in self._suspicions.dead(now)
                if s.name in self._members and self._members[s.name].version <= s.version]
            for name in [s.name for s in self._suspicions.dead(now)]:
                self._suspicions.clear(name)
            if self._unheard and now - self._start > self.expiry:  # known before the restart, never heard since
                gone += [(self._members, k) for k in self._unheard if k in self._members and self._members[k].heard is None]
                self._unheard.clear()
            gone += [(self._p2prc, k) for k, m in self._p2prc.items() if (m.heard is None and now - self._start > self.expiry)
                     or (m.heard is not None and now - m.heard > self.expiry)]
            left = [self._bury_one(tier, k, now, "expired") for tier, k in gone]
            for k in [k for k, (_v, when) in self._dead.items() if now - when > self.expiry]:
                del self._dead[k]
            if left:
                self._save()
        return [name for name in left if name]

    def _bury_one(self, tier: dict[Any, Known], k: Any, now: float, why: str) -> str:
        """Take ``k`` out of ``tier``, remembered as a tombstone; its name (the caller locks and saves)."""
        known = tier.pop(k)
        self._dead.pop(k, None)
        self._dead[k] = (known.version, now)
        while len(self._dead) > self.max_peers:  # the oldest tombstone goes first
            del self._dead[next(iter(self._dead))]
        self._suspicions.clear(known.member.name)
        if tier is self._members:
            self._summary.drop(k)
        log.info("peer %s (%s) %s", known.member.name, known.member.address, why)
        return known.member.name

    def targets(self, count: int) -> list[Member]:
        """Up to ``count`` members chosen at random among the live and the not yet confirmed."""
        return self._sample(self._members, count)

    def p2prc_targets(self, count: int) -> list[Member]:
        """Up to ``count`` P2PRC peers to ask whether they are still there."""
        return self._sample(self._p2prc, count)

    def _sample(self, tier: dict[Any, Known], count: int) -> list[Member]:
        now = self.clock()
        with self._lock:
            pool = list(tier.values()) if tier is self._members else \
                [m for m in tier.values() if m.heard is None or now - m.heard <= self.expiry]
        return [m.member for m in random.sample(pool, min(count, len(pool)))]

    def answered(self, peer: Member, ok: bool) -> None:
        """How a direct exchange went; a P2PRC peer that answered is heard by that."""
        with self._lock:
            known = self._members.get(peer.name) if peer.signed else self._p2prc.get(peer.peer_key)
            if known is None:
                return
            known.answered = ok
            if not peer.signed and peer.peer_key in self._never:  # itself, or no longer admitted: dropped
                del self._p2prc[peer.peer_key]
                self._save()
                return
            if ok and not peer.signed:
                known.heard = self.clock()

    def remove(self, ref: str) -> list[str]:
        """An operator's removal: the members and P2PRC peers called ``ref`` or at address ``ref``.
        A removed member that is alive comes back after its tombstone (``expiry``) with a newer
        version; a provider leaves the fleet for good when its certificate stops being trusted."""
        now = self.clock()
        with self._lock:
            gone = []
            tiers: tuple[dict[Any, Known], ...] = (self._members, self._p2prc)
            for tier in tiers:
                for k in [k for k, m in tier.items() if ref in (m.member.name, m.member.address)]:
                    address = tier[k].member.address
                    gone.append(self._bury_one(tier, k, now, "removed by an administrator") or address)
            if gone:
                self._save()
                log.info("removed by an administrator: %s", ", ".join(gone))
        return gone

    # ---- what an exchange compares (sync.py) ----------------------------------------------------

    @property
    def name(self) -> str:
        return self.me.name

    def size(self) -> int:
        return len(self._summary)

    def root(self) -> str:
        with self._lock:
            return self._summary.root()

    def bucket_hashes(self) -> list[str]:
        with self._lock:
            return self._summary.buckets()

    def digests(self, buckets: list[int]) -> tuple[dict[str, int], dict[str, int]]:
        """Names and versions held in ``buckets``: of the live (this provider too), and of the buried."""
        wanted = set(buckets)
        with self._lock:
            dead = {k: v for k, (v, _when) in self._dead.items() if isinstance(k, str) and bucket_of(k) in wanted}
            return self._summary.digests(buckets), dead

    def version_of(self, name: str) -> Optional[int]:
        """The version of ``name`` this table serves (None: not a live member here)."""
        return self._summary.version(name)

    def own_version(self) -> int:
        return self._own.version

    def entries(self, names: list[str]) -> list[dict[str, Any]]:
        """The entries of the live members (this provider too) called ``names``, with their ages."""
        now = self.clock()
        with self._lock:
            out = [self._own] if self.name in names else []
            for name in names:
                m = self._members.get(name)
                if m is not None and m.heard is not None:
                    out.append(m.member.aged(now - m.heard))
        return [render_entry(m) for m in out]

    def heard_from(self, name: str) -> None:
        """A member called us over the fleet's TLS (its certificate names it): it is there now."""
        with self._lock:
            member = self._members.get(name)
            if member is not None and member.heard is not None:
                member.heard = self.clock()

    def bury(self, dead: dict[str, int]) -> Optional[dict[str, Any]]:
        """Members held dead at a version: gone here if held at exactly that version (a claim of a
        version this table never held proves nothing, and names not held leave no tombstone). If it
        names this provider, the claim is refuted instead: returns our newly signed entry."""
        now, refuted = self.clock(), None
        with self._lock:
            left = []
            for name, version in dead.items():
                if name == self.name:
                    if version >= self._own.version:
                        self._own = refuted = self._signed_own()
                    continue
                member = self._members.get(name)
                if member is not None and member.version == version:
                    left.append(self._bury_one(self._members, name, now, "dead by another member's table"))
            if left:
                self._save()
        return {"alive": render_entry(refuted)} if refuted else None

    def suspect(self, name: str, version: int, age: float = 0.0) -> Optional[dict[str, Any]]:
        """A suspicion of ``name`` at ``version``, raised ``age`` seconds ago. Returns the news to
        pass on: the suspicion if it is news here, or our refutation if it names this provider."""
        now = self.clock()
        with self._lock:
            if name == self.name:
                if version < self._own.version:
                    return None
                self._own = self._signed_own()
                log.info("suspected at version %d: refuted with version %d", version, self._own.version)
                return {"alive": render_entry(self._own)}
            member = self._members.get(name)
            # Only at the version held: a higher one could never be refuted (the victim signs with its clock).
            if member is None or member.heard is None or member.version != version \
                    or not self._suspicions.raise_(name, version, now, age):
                return None
            log.info("member %s suspected (raised %.0f s ago)", name, age)
            return self.suspicion(name)

    def suspicion(self, name: str) -> Optional[dict[str, Any]]:
        """The suspicion held of ``name`` as news (``since`` on our clock), or None."""
        held = self._suspicions.get(name)
        return None if held is None else {"suspect": held.name, "version": held.version, "since": held.since}

    def suspect_member(self, name: str) -> Optional[dict[str, Any]]:
        """Raise a suspicion of the member ``name`` at the version held (it answered neither us nor
        the members asked to probe it); the news to pass on, or None."""
        member = self._members.get(name)
        return None if member is None else self.suspect(name, member.version)

    # ---- merging a table ------------------------------------------------------------------------

    def merge(self, data: Any) -> dict[str, list[dict[str, Any]]]:
        """A whole table (a file's, a test's): taken as ``take`` does. Returns ours. (Members exchange
        summaries and differences through sync.py, never whole tables.)"""
        self._take(parse_table(data, self.max_peers))
        return self.table()

    def take(self, entries: list[Any]) -> list[dict[str, Any]]:
        """Signed entries from a member, as the wire carries them: renew what is newer and signed,
        take new members that answer as members; entries without a signature are ignored. Returns
        what was news here (to pass on). Raises InvalidInput naming the first entry that is not a
        peer entry."""
        return [render_entry(m) for m in self._take([_valid(raw, i) for i, raw in enumerate(entries)])]

    def _take(self, entries: list[Member]) -> list[Member]:
        incoming = [e for e in entries if e.signed]
        now = self.clock()
        new: dict[str, Member] = {}
        news: list[Member] = []
        with self._lock:
            for entry in incoming:
                if self._is_me(entry):
                    continue
                known = self._members.get(entry.name)
                if known is None:
                    dead = self._dead.get(entry.name)
                    if dead is None or entry.version > dead[0]:
                        new.setdefault(entry.name, entry)
                elif _renews(known, entry) or (known.heard is None and _confirms(known, entry)):
                    known.member = entry.aged(0.0)
                    known.heard = max(known.heard or 0.0, now - min(entry.age, self.expiry))
                    self._summary.put(entry.name, known.version)
                    self._suspicions.refuted(entry.name, known.version)
                    news.append(known.member)
            room = self.max_peers - len(self._members)
        candidates = [e for e in list(new.values())[: max(0, min(room, self.checks_per_merge))] if signature_valid(e)]
        return news + self._add(self._members, self._verified(candidates, self.verify), lambda e: e.name)

    def merge_p2prc(self, data: Any) -> dict[str, list[dict[str, Any]]]:
        """What P2PRC peers and clients post: P2PRC peers that answer, kept apart from the members
        (a signature they carry is dropped: posting never makes a member). An entry this provider
        may not ask (admission.py) is dropped, never contacted; a post with nothing new besides is
        refused, naming the field and why. Returns P2PRC's table."""
        incoming = [e.unsealed() for e in parse_table(data, self.max_peers)]
        with self._lock:
            names = {k.member.name for k in self._members.values()}
            addresses = {k.member.peer_key for k in self._members.values()}
            fresh = [(i, e) for i, e in enumerate(incoming)
                     if not self._is_me(e) and e.name not in names and e.peer_key not in addresses
                     and e.peer_key not in self._p2prc and e.peer_key not in self._dead and e.peer_key not in self._never]
            room = self.max_peers - len(self._p2prc)
        new = self._admitted(fresh)
        candidates = list(new.values())[: max(0, min(room, self.checks_per_merge))]
        self._add(self._p2prc, self._verified(candidates, self.verify_p2prc), lambda e: e.peer_key)
        return self.p2prc_table()

    def _admitted(self, fresh: list[tuple[int, Member]]) -> dict[Key, Member]:
        """The posted entries (with their index) this provider may ask, by address and port."""
        admitted: dict[Key, Member] = {}
        refused: list[dict[str, str]] = []
        members = self._member_addresses()
        for index, entry in fresh:
            why = self.admission.refusal(entry, members) if self.admission else None
            if why is None:
                admitted[entry.peer_key] = entry
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
            return [(k.member.address, k.member.name) for k in self._members.values()]

    def _ask_p2prc(self, entry: Member) -> bool:
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
                self._never[entry.peer_key] = why[1]
                while len(self._never) > self.max_peers:
                    del self._never[next(iter(self._never))]
            log.info("P2PRC peer %s:%s dropped: %s", *entry.peer_key, why[1])
            return False
        return info is not None

    def _add(self, tier: dict[Any, Known], answered: list[Member], key: Callable[[Member], Any]) -> list[Member]:
        with self._lock:
            added = []
            for entry in answered:
                k = key(entry)
                if len(tier) < self.max_peers and k not in tier and not self._is_me(entry):
                    tier[k] = Known(entry.aged(0.0), self.clock(), answered=True)
                    self._dead.pop(k, None)
                    if tier is self._members:
                        self._summary.put(k, tier[k].version)
                    added.append(tier[k].member)
            if added:
                self._save()
                log.info("added %d peers: %s", len(added), ", ".join(e.name or e.address for e in added[:20]))
        return added

    def _verified(self, entries: list[Member], verify: Optional[Callable[[Member], bool]]) -> list[Member]:
        """The entries whose peers answer directly, checked on at most the free check slots."""
        slots = 0
        while slots < len(entries) and self._checks.acquire(blocking=False):
            slots += 1
        if entries and not slots:
            raise Busy("peer checks: this provider is checking as many peers as it allows; try again shortly",
                       "ip_address", {"retry_after": 5})
        try:
            if not entries or verify is None:
                return []
            if slots == 1:
                return [e for e in entries if verify(e)]
            with ThreadPoolExecutor(max_workers=slots) as pool:
                return [e for e, ok in zip(entries, pool.map(verify, entries)) if ok]
        finally:
            for _slot in range(slots):
                self._checks.release()


def _renews(known: Known, entry: Member) -> bool:
    """Only the member's own newer signed version, under the key pinned when it was verified."""
    return (known.member.key is not None and entry.key == known.member.key and entry.version > known.version
            and signature_valid(entry))


def _confirms(known: Known, entry: Member) -> bool:
    """The version held since before a restart, heard again (entries are not re-signed as a heartbeat)."""
    return (known.member.key is not None and entry.key == known.member.key and entry.version == known.version
            and signature_valid(entry))


def _valid(raw: Any, index: int) -> Member:
    """A received entry, parsed once per distinct signed entry: the same signed entry arrives
    from many members, and the parsed Member (immutable) is shared."""
    record = raw.get("dockpool") if isinstance(raw, dict) else None
    signature = record.get("signature") if isinstance(record, dict) else None
    if not isinstance(record, dict) or not isinstance(signature, str):
        return parse_entry(raw, index)
    age = record.get("age")  # the one field relayers change (unsigned): checked apart
    plain = {**raw, "dockpool": {**record, "age": 0}}
    known = _PARSED.get(signature)
    if known is not None and known[0] == plain and not isinstance(age, bool) and isinstance(age, (int, float)) \
            and 0 <= age <= 1e9:
        return known[1].aged(age)
    entry = parse_entry(raw, index)
    if len(_PARSED) >= _VERIFIED_MOST:
        _PARSED.clear()
    _PARSED[signature] = (plain, entry)
    return entry


_PARSED: dict[str, tuple[dict[str, Any], Member]] = {}


"""The exchange rounds that keep a provider's peer table current, and the failure detector.

Every ``gossip_interval`` seconds the provider exchanges with ``gossip_fanout`` members chosen
at random, over the fleet's mutual TLS (their certificates' names checked). An exchange
(sync.py) sends a summary of the table first and then only what differs, with news riding
along (a newer signed entry, a suspicion), so a quiet fleet costs each member a few hundred
bytes a round whatever its size. Nothing is re-signed as a heartbeat: an exchange is also a
probe (SWIM, as hashicorp/memberlist runs it). A member that does not answer is probed by up
to ``PROBERS`` other members on our behalf (``/v1/fleet/probe``: reached by another path, it
is not suspected for our own path's fault); if none reaches it, it is suspected, the suspicion
spreads as news, and it leaves every table ``peer_expiry`` seconds after it was raised unless
it refutes it by signing a newer version. A member that answers "busy" is there.

As many P2PRC peers are asked for ``/server_info``, in clear and with no credential, only to
know whether they are still there. Each bootstrap peer is tried until it answers once, and
again whenever no peer is live, each with its own backoff, so a dead one never holds the
service. Each request is bounded: at most ``max_json_bytes`` read, within one deadline.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from dockpool.errors import Busy, DockpoolError, InvalidInput

from ..config import ApiConfig, parse_peer_url
from .broadcasts import Broadcasts
from .members import Member
from .membership import Membership
from .metrics import FleetMetrics
from .sync import Sync
from .transport import Call, Endpoint, Transport, Unreachable, ask, route_path

log = logging.getLogger("dockpool.gossip")
PROBERS = 3  # members asked to probe one that did not answer (memberlist's IndirectChecks)
CLAIM_ROUNDS = 2  # rounds back a suspicion heard from another member may be dated, at most
STEPS_AFTER_OPENING = 2  # an exchange's digests and entries
GOSSIP_PATH = "/v1/fleet/gossip"
PROBE_PATH = "/v1/fleet/probe"
# One request to a member (an Endpoint: whoever a bootstrap address holds), its path and JSON
# body; the answer's body. Raises OSError (Unreachable) or ValueError (PeerBusy: it is there).
Post = Callable[[Union[Member, Endpoint], str, bytes], bytes]


class PeerBusy(ValueError):
    """The member answered, but is answering as many exchanges as it allows: it is there."""


class Traffic:
    """Bytes this provider sent to peers (its exchanges and its answers), for the accounting per round."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0

    def add(self, count: int) -> None:
        with self._lock:
            self.sent += count


class RateLimit:
    """At most ``count`` events per ``period`` seconds (a fixed window): what bounds the answers
    a provider gives to exchanges, whatever the number of peers that pick it."""

    def __init__(self, count: int, period: float) -> None:
        self.count, self.period = count, period
        self._lock = threading.Lock()
        self._window, self._used = 0.0, 0

    def take(self) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._window >= self.period:
                self._window, self._used = now, 0
            if self._used >= self.count:
                return False
            self._used += 1
            return True


@dataclass
class Bootstrap:
    url: str
    address: str
    port: int
    delay: float
    due: float = 0.0
    answered: bool = False


class Gossip:
    """The rounds of one provider, and its answers to other members' exchanges and probes.
    ``post`` is the transport to members (None: no fleet certificate, no members);
    ``concurrent`` False runs a round's exchanges one after another (the simulation)."""

    def __init__(self, config: ApiConfig, peers: Membership, traffic: Traffic, events: FleetMetrics,
                 post: Optional[Post], clock: Callable[[], float] = time.monotonic, concurrent: bool = True) -> None:
        self.config, self.peers, self.traffic, self.events, self.post = config, peers, traffic, events, post
        self.clock, self.concurrent = clock, concurrent
        self.sync = Sync(peers, Broadcasts(), clock, max_age=CLAIM_ROUNDS * config.gossip_interval)
        self._steps: dict[str, tuple[int, float]] = {}  # by caller: later steps its admitted opening allows, until when
        self._steps_lock = threading.Lock()
        self.rounds = 0
        self.bytes_last_round = 0
        self._bytes_at_round = 0
        self._spread_version = peers.own_version()  # a start is no news: joins spread through the summaries
        self._bootstrap = [Bootstrap(url, *parse_peer_url(url), delay=self.config.gossip_interval)
                           for url in self.config.bootstrap_peers]

    def start(self) -> None:
        """Run the rounds in a daemon thread, for the life of the service."""
        threading.Thread(target=self._run, name="gossip", daemon=True).start()

    def _run(self) -> None:
        while True:
            began = time.monotonic()
            try:
                self.round()
            except Exception:  # one bad round must not end membership for good
                log.exception("exchange round %d failed", self.rounds)
            time.sleep(max(0.0, self.config.gossip_interval - (time.monotonic() - began)))

    def round(self) -> None:
        sent = self.traffic.sent
        self.bytes_last_round, self._bytes_at_round = sent - self._bytes_at_round, sent
        if self.rounds:  # what the round that just ended sent
            self.events.round_bytes.observe(self.bytes_last_round)
        self.rounds += 1
        self.events.rounds.inc()
        self.peers.expire()
        self.changed()
        targets: list[Union[Member, Bootstrap]] = list(self.peers.p2prc_targets(self.config.gossip_fanout))
        if self.post is not None:  # members only with a fleet certificate
            targets += self.peers.targets(self.config.gossip_fanout)
            # Each bootstrap peer until it has answered once, and all of them again whenever no member is live.
            alone, now = self.peers.size() <= 1, self.clock()
            targets += [b for b in self._bootstrap if b.due <= now and (alone or not b.answered)]
        if not self.concurrent:
            for target in targets:
                self._exchange_with(target)
        elif targets:
            with ThreadPoolExecutor(max_workers=len(targets)) as pool:
                list(pool.map(self._exchange_with, targets))

    def changed(self) -> None:
        """Our own entry is news when its version changed (a drain, a refutation)."""
        own = self.peers.own()
        if own["dockpool"]["version"] != self._spread_version:
            self._spread_version = own["dockpool"]["version"]
            self.sync.spread({"alive": own})

    def _exchange_with(self, target: Union[Bootstrap, Member]) -> None:
        if isinstance(target, Bootstrap):
            ok = self._sync(Endpoint(target.address, target.port)) is not False
            self.events.exchanges.labels("answered" if ok else "failed").inc()
            target.answered = target.answered or ok
            # Backoff per bootstrap peer: doubled after each failure, up to 32 rounds; reset when it answers.
            target.delay = self.config.gossip_interval if ok else min(target.delay * 2, 32 * self.config.gossip_interval)
            target.due = self.clock() + target.delay
            return
        if not target.signed:  # a P2PRC peer: is it there?
            self.peers.answered(target, bool(self.peers.verify_p2prc and self.peers.verify_p2prc(target)))
            return
        outcome = self._sync(target)
        self.events.exchanges.labels("answered" if outcome else "failed").inc()
        self.peers.answered(target, bool(outcome))
        if outcome is False and not self._probed_by_others(target):
            # Dated one round back: a member that others reach every round failed at most about a round
            # before anyone noticed, so it leaves every table about the expiry after it failed.
            news = self.peers.suspect(target.name, target.version, self.config.gossip_interval)
            if news is not None:
                self.sync.spread(news)

    def _sync(self, to: Union[Member, Endpoint], ping: bool = False) -> Optional[bool]:
        """One exchange (``ping``: its opening alone): True if it answered, None if it was busy, False if not."""
        def send(message: dict[str, Any]) -> dict[str, Any]:
            return self._call(to, GOSSIP_PATH, message)

        try:
            (self.sync.ping if ping else self.sync.run)(send)
            return True
        except (PeerBusy, Busy):  # it answered but is busy, or we are (checking as many new members as we allow)
            return None
        except (OSError, ValueError, DockpoolError) as exc:  # ssl.SSLError (a wrong certificate) is an OSError
            log.info("peer %s: %s", _label(to), getattr(exc, "message", exc))
            return False

    def _call(self, to: Union[Member, Endpoint], path: str, message: dict[str, Any]) -> Any:
        assert self.post is not None
        body = json.dumps(message, separators=(",", ":")).encode()
        self.traffic.add(len(body))
        return json.loads(self.post(to, path, body))

    def _probed_by_others(self, target: Member) -> bool:
        """Whether one of up to ``PROBERS`` other members reaches ``target`` (memberlist's indirect probe)."""
        helpers = [m for m in self.peers.targets(PROBERS + 1) if m.name != target.name][:PROBERS]
        for helper in helpers:
            try:
                answer = self._call(helper, PROBE_PATH, {"name": target.name})
            except (OSError, ValueError) as exc:
                log.info("probe of %s through %s: %s", target.name, helper.name, exc)
                continue
            if isinstance(answer, dict) and answer.get("ack") is True:
                return True
        return False

    # ---- the answering side (the fleet listener's routes call these) ----------------------------------

    def answer(self, path: str, message: Any, caller: Optional[str],
               admit: Optional[Callable[[], bool]] = None) -> bytes:
        """The answer (JSON) to a member's exchange step (GOSSIP_PATH) or probe request (PROBE_PATH),
        its body parsed. ``admit`` bounds the exchanges and probes answered: an opening takes one
        of its tokens, and allows the same caller an exchange's two later steps within two rounds;
        a later step without one is refused as an opening over the bound is."""
        opening = isinstance(message, dict) and ("root" in message or path == PROBE_PATH)
        if admit is not None and not (self._admitted(caller, admit) if opening else self._later_step(caller)):
            raise Busy(f"peer exchanges: this provider answers {self.config.gossip_answers} per "
                       f"{self.config.gossip_interval:g} s; exchange with another peer", "root",
                       {"retry_after": max(1, round(self.config.gossip_interval))})
        out = self._probe(message) if path == PROBE_PATH else self.sync.answer(message, caller)
        data = json.dumps(out, separators=(",", ":")).encode()
        self.traffic.add(len(data))
        return data

    def _admitted(self, caller: Optional[str], admit: Callable[[], bool]) -> bool:
        if not admit():
            return False
        now = self.clock()
        with self._steps_lock:  # at most the admitted openings of two rounds are held
            for name in [n for n, (_left, until) in self._steps.items() if until <= now]:
                del self._steps[name]
            if caller:
                self._steps[caller] = (STEPS_AFTER_OPENING, now + CLAIM_ROUNDS * self.config.gossip_interval)
        return True

    def _later_step(self, caller: Optional[str]) -> bool:
        now = self.clock()
        with self._steps_lock:
            left, until = self._steps.get(caller or "", (0, 0.0))
            if left <= 0 or until <= now:
                return False
            self._steps[str(caller)] = (left - 1, until)
            return True

    def _probe(self, message: Any) -> dict[str, Any]:
        name = message.get("name") if isinstance(message, dict) else None
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            raise InvalidInput("name: must be a member's name (1 to 64 characters)", "name")
        member = self.peers.member(name)
        if member is None or self.post is None:
            return {"ack": False}
        return {"ack": self._sync(member, ping=True) is not False}

    def status(self) -> dict[str, Any]:
        return {"round": self.rounds, "interval": self.config.gossip_interval, "fanout": self.config.gossip_fanout,
                "expiry": self.config.peer_expiry, "bytes_sent_last_round": self.bytes_last_round}


def _label(to: Union[Member, Endpoint]) -> str:
    """A member by name; a bootstrap address as address:port."""
    return to.name if isinstance(to, Member) else f"{to.address}:{to.port}"


def transport_post(config: ApiConfig, transport: Transport) -> Post:
    """Requests to members through the fleet's transport, each within one deadline and read bound."""
    deadline = min(max(1.0, config.gossip_interval), 10.0)

    def post(to: Union[Member, Endpoint], path: str, body: bytes) -> bytes:
        status, answer = ask(transport, to, Call("POST", path, body, deadline=deadline, most=config.max_json_bytes))
        if status == 503:  # it answered: as many exchanges as it allows, or checking as many peers (Busy)
            raise PeerBusy(f"{_label(to)} is busy")
        if status != 200:
            raise ValueError(f"answered {status}: {answer[:200]!r}")
        return answer

    return post


def verify_member(config: ApiConfig, transport: Optional[Transport], entry: Member) -> bool:
    """Is the entry's provider where it says, over the fleet's mutual TLS, with a certificate naming
    it and the key its entry was signed with? (Only then does it become a member.)"""
    if transport is None or entry.seal is None or not config.peer_rule.permits(entry.address):
        return False
    try:
        status, content = ask(transport, entry, Call("GET", route_path("v1", "fleet", "identity"),
                                                     deadline=min(3.0, config.gossip_interval * 2), most=65536))
        info = json.loads(content) if status == 200 else None
    except (Unreachable, ValueError) as exc:
        log.info("member %s at %s did not answer as itself: %s", entry.name, entry.address, exc)
        return False
    return isinstance(info, dict) and info.get("membership_key") == entry.seal.key

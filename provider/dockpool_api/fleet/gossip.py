"""The exchange rounds that keep a provider's peer table current (push-pull gossip).

Every ``gossip_interval`` seconds the provider signs a newer version of its own entry,
expires the silent, and exchanges its table with ``gossip_fanout`` members chosen at random,
over the fleet's mutual TLS (their certificates' names checked): it sends its table and
merges theirs. As many P2PRC peers are asked for ``/server_info``, in clear and with no
credential, only to know whether they are still there. Each bootstrap peer is tried until it answers once, and again
whenever no peer is live, each with its own backoff, so a dead one never holds the service. Each exchange is
one bounded request: at most ``max_json_bytes`` read, within one deadline.
"""
from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

from dockpool.errors import DockpoolError

from ..config import ApiConfig, parse_peer_url
from . import transport
from .membership import Membership, fleet_port
from .metrics import FleetMetrics
from .wire import exchange, peer_key

log = logging.getLogger("dockpool.gossip")


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
    def __init__(self, config: ApiConfig, peers: Membership, traffic: Traffic,
                 context: Optional[ssl.SSLContext], events: FleetMetrics) -> None:
        self.config, self.peers, self.traffic, self.context, self.events = config, peers, traffic, context, events
        self.rounds = 0
        self.bytes_last_round = 0
        self._bytes_at_round = 0
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
        self.peers.heartbeat()
        targets: list[Any] = self.peers.p2prc_targets(self.config.gossip_fanout)
        if self.context is not None:  # members only with a fleet certificate
            targets += self.peers.targets(self.config.gossip_fanout)
            # Each bootstrap peer until it has answered once, and all of them again whenever no member is live.
            alone, now = not any(m["tier"] == "member" for m in self.peers.members()), time.monotonic()
            targets += [b for b in self._bootstrap if b.due <= now and (alone or not b.answered)]
        if not targets:
            return
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            list(pool.map(self._exchange_with, targets))

    def _exchange_with(self, target: Any) -> None:
        if isinstance(target, Bootstrap):
            ok = self._push_pull(target.address, target.port, None)
            self.events.exchanges.labels("answered" if ok else "failed").inc()
            target.answered = target.answered or ok
            # Backoff per bootstrap peer: doubled after each failure, up to 32 rounds; reset when it answers.
            target.delay = self.config.gossip_interval if ok else min(target.delay * 2, 32 * self.config.gossip_interval)
            target.due = time.monotonic() + target.delay
            return
        if target.get("dockpool") is None:  # a P2PRC peer: is it there?
            self.peers.answered(target, bool(self.peers.verify_p2prc and self.peers.verify_p2prc(target)))
            return
        ok = self._push_pull(peer_key(target)[0], fleet_port(target), target["Name"])
        self.events.exchanges.labels("answered" if ok else "failed").inc()
        self.peers.answered(target, ok)

    def _deadline(self) -> float:
        return min(max(1.0, self.config.gossip_interval), 10.0)

    def _push_pull(self, address: str, port: int, name: Optional[str]) -> bool:
        """Send our table to the member ``name`` (None: whichever member a bootstrap address holds),
        merge the answer; whether it answered with a table."""
        assert self.context is not None
        body = json.dumps(self.peers.table(), separators=(",", ":")).encode()
        self.traffic.add(len(body))
        try:
            status, answer = exchange(address, port, self._deadline(), self.config.max_json_bytes,
                                      path="/v1/fleet/exchange", body=body,
                                      wrap=transport.wrapper(self.context, name))
            if status != 200:
                log.info("peer %s:%d answered %d: %s", address, port, status, answer[:200])
                return False
            self.peers.merge(json.loads(answer))
            return True
        except (OSError, ValueError, DockpoolError) as exc:  # ssl.SSLError (a wrong certificate) is an OSError
            log.info("peer %s:%d: %s", address, port, getattr(exc, "message", exc))
            return False

    def status(self) -> dict[str, Any]:
        return {"round": self.rounds, "interval": self.config.gossip_interval, "fanout": self.config.gossip_fanout,
                "expiry": self.config.peer_expiry, "bytes_sent_last_round": self.bytes_last_round}


def verify_member(config: ApiConfig, context: Optional[ssl.SSLContext], entry: dict[str, Any]) -> bool:
    """Is the entry's provider at its address, over the fleet's mutual TLS, with a certificate naming
    it and the key its entry was signed with? (Only then does it become a member.)"""
    address = peer_key(entry)[0]
    if context is None or not config.peer_rule.permits(address):
        return False
    try:
        status, content = exchange(address, fleet_port(entry), min(3.0, config.gossip_interval * 2), 65536,
                                   path="/v1/fleet/identity", wrap=transport.wrapper(context, entry["Name"]))
        info = json.loads(content) if status == 200 else None
    except (OSError, ValueError) as exc:
        log.info("member %s at %s did not answer as itself: %s", entry["Name"], address, exc)
        return False
    return isinstance(info, dict) and info.get("membership_key") == entry["dockpool"]["key"]

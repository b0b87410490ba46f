"""The exchange rounds that keep a provider's peer table current (push-pull gossip).

Every ``gossip_interval`` seconds the provider signs a newer version of its own entry,
expires the silent, and exchanges its table with ``gossip_fanout`` peers chosen at random:
it sends its table and merges theirs. A P2PRC peer (it has no such route) is asked for
``/server_info`` instead. Each bootstrap peer is tried until it answers once, and again
whenever no peer is live, each with its own backoff, so a dead one never holds the service. Each exchange is
one bounded request: at most ``max_json_bytes`` read, within one deadline.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dockpool.errors import DockpoolError
from dockpool.membership import Membership
from dockpool.peers import exchange, peer_key, verify_peer

from .config import ApiConfig, parse_peer_url

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
    def __init__(self, config: ApiConfig, peers: Membership, traffic: Traffic) -> None:
        self.config, self.peers, self.traffic = config, peers, traffic
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
        self.rounds += 1
        self.peers.heartbeat()
        targets: list[Any] = self.peers.targets(self.config.gossip_fanout)
        # Each bootstrap peer until it has answered once, and all of them again whenever no peer is live.
        alone, now = not self.peers.members(), time.monotonic()
        targets += [b for b in self._bootstrap if b.due <= now and (alone or not b.answered)]
        if not targets:
            return
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            list(pool.map(self._exchange_with, targets))

    def _exchange_with(self, target: Any) -> None:
        if isinstance(target, Bootstrap):
            ok = self._push_pull(target.address, target.port)
            target.answered = target.answered or ok
            # Backoff per bootstrap peer: doubled after each failure, up to 32 rounds; reset when it answers.
            target.delay = self.config.gossip_interval if ok else min(target.delay * 2, 32 * self.config.gossip_interval)
            target.due = time.monotonic() + target.delay
            return
        if target.get("dockpool") is None:  # a P2PRC peer: is it there?
            self.peers.answered(target, verify_peer(target, self.config.peer_rule, deadline=self._deadline()))
            return
        address, port = peer_key(target)
        self.peers.answered(target, self._push_pull(address, int(port)))

    def _deadline(self) -> float:
        return min(max(1.0, self.config.gossip_interval), 10.0)

    def _push_pull(self, address: str, port: int) -> bool:
        """Send our table, merge the answer; whether the peer answered with a table."""
        body = json.dumps(self.peers.table(), separators=(",", ":")).encode()
        headers = {"Authorization": f"Bearer {self.config.fleet_token}"} if self.config.fleet_token else {}
        self.traffic.add(len(body))
        try:
            status, answer = exchange(address, port, self._deadline(), self.config.max_json_bytes,
                                      path="/v1/peers", body=body, headers=headers)
            if status != 200:
                log.info("peer %s:%d answered %d: %s", address, port, status, answer[:200])
                return False
            self.peers.merge(json.loads(answer))
            return True
        except (OSError, ValueError, DockpoolError) as exc:
            log.info("peer %s:%d: %s", address, port, getattr(exc, "message", exc))
            return False

    def status(self) -> dict[str, Any]:
        return {"round": self.rounds, "interval": self.config.gossip_interval, "fanout": self.config.gossip_fanout,
                "expiry": self.config.peer_expiry, "bytes_sent_last_round": self.bytes_last_round}

"""What a fleet's operator graphs, counted where it happens: exchange rounds and their bytes,
moves and drains (in flight, durations, failures), replica refreshes and budget refusals.

One instance per service (Services.events); the parts that act call it, and metrics.py serves
it with what is read at scrape time (members, replicas). Label values come from fixed sets,
never from what a caller sent, so nobody can add series."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric

from ..packages import BUDGETS

# Bytes a provider sends in one round: a quiet fleet's few hundred up to tables of thousands.
ROUND_BYTES = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
# A move is a filesystem through the network: seconds to many minutes.
MOVE_SECONDS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
DRAIN_SECONDS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200)


class FleetMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rounds = Counter("dockpool_fleet_exchange_rounds", "Exchange rounds this provider began", registry=r)
        self.round_bytes = Histogram("dockpool_fleet_exchange_round_bytes",
                                     "Bytes this provider sent to peers in one exchange round (its exchanges and answers)",
                                     buckets=ROUND_BYTES, registry=r)
        self.exchanges = Counter("dockpool_fleet_exchanges", "Exchanges with members, by whether the member answered",
                                 ["result"], registry=r)
        self.moves_in_flight = Gauge("dockpool_fleet_moves_in_flight", "Moves out of this provider under way", registry=r)
        self.moves = Counter("dockpool_fleet_moves", "Moves out of this provider that ended, by result "
                             "(done, failed: it runs here again, in_doubt: stopped until the target answers)",
                             ["result"], registry=r)
        self.move_seconds = Histogram("dockpool_fleet_move_seconds", "How long moves out of this provider took, "
                                      "whatever their result", buckets=MOVE_SECONDS, registry=r)
        self.drains_in_flight = Gauge("dockpool_fleet_drains_in_flight", "Drains (POST /v1/drain/moves) under way",
                                      registry=r)
        self.drains = Counter("dockpool_fleet_drains", "Drains that ended, by result (complete: every instance left, "
                              "incomplete: some stayed, failed: the drain itself failed)", ["result"], registry=r)
        self.drain_seconds = Histogram("dockpool_fleet_drain_seconds", "How long drains took", buckets=DRAIN_SECONDS,
                                       registry=r)
        self.drain_stayed = Counter("dockpool_fleet_drain_stayed_instances",
                                    "Instances a drain could not move (they stayed here)", registry=r)
        self.replica_shipped = Counter("dockpool_fleet_replica_shipped_bytes",
                                       "Bytes this provider's replica refreshes shipped to holders", registry=r)
        self.replica_refreshes = Counter("dockpool_fleet_replica_refreshes",
                                         "Replica refreshes, by result", ["result"], registry=r)
        self.budget_refusals = Counter("dockpool_budget_refusals",
                                       "Creations and starts refused because a budget of the client's package was spent",
                                       ["budget"], registry=r)
        for result in ("answered", "failed"):
            self.exchanges.labels(result)
        for result in ("done", "failed", "in_doubt"):
            self.moves.labels(result)
        for result in ("complete", "incomplete", "failed"):
            self.drains.labels(result)
        for result in ("done", "failed"):
            self.replica_refreshes.labels(result)
        for budget in BUDGETS:
            self.budget_refusals.labels(budget)

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()

    @contextmanager
    def move(self) -> Iterator[dict[str, str]]:
        """Around one move out: in flight while it runs; its time and result when it ends. The
        caller sets ``result`` (``in_doubt``); an exception without one counts as failed."""
        outcome = {"result": ""}
        self.moves_in_flight.inc()
        began = time.monotonic()
        try:
            yield outcome
            outcome["result"] = outcome["result"] or "done"
        finally:
            self.moves_in_flight.dec()
            self.move_seconds.observe(time.monotonic() - began)
            self.moves.labels(outcome["result"] or "failed").inc()

    @contextmanager
    def drain(self) -> Iterator[dict[str, int]]:
        """Around one drain; the caller sets ``stayed`` (the instances that could not leave)."""
        outcome = {"stayed": -1}
        self.drains_in_flight.inc()
        began = time.monotonic()
        try:
            yield outcome
        finally:
            self.drains_in_flight.dec()
            self.drain_seconds.observe(time.monotonic() - began)
            stayed = outcome["stayed"]
            self.drains.labels("failed" if stayed < 0 else "incomplete" if stayed else "complete").inc()
            self.drain_stayed.inc(max(stayed, 0))

"""The API's Prometheus metrics: requests by method, route and status, the time creations
take, the instances by state (read from the engine when scraped), the fleet (members read
when scraped, events counted by fleet/metrics.py), and what each client used (read from the
usage ledger when scraped).

Units are Prometheus's base units (seconds, bytes). Series that name a client (its usage, its
replicas: instance names begin with the owner's name) are on a page of their own, served only
to the operator's scrape credential and to admins (access.sees_clients)."""
from __future__ import annotations

import time
from typing import Iterable, Iterator

from bottle import request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dockpool.errors import DockpoolError

from .fleet.members import view
from .services import Services

# Metric labels take only these methods: any other word a caller sends counts as "other",
# so nobody can add series without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The ledger counts memory held in GiB-hours; Prometheus's unit is the byte-second.
BYTE_SECONDS_PER_GIB_HOUR = 1024**3 * 3600
TIERS = ("member", "p2prc")
MEMBER_STATES = ("answering", "silent", "unchecked", "draining")


def method_label() -> str:
    return request.method if request.method in METHODS else "other"


class InstancesCollector:
    """dockpool_instances{state=...}, read from the engine at scrape time."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("dockpool_instances", "Instances on this provider by state", labels=["state"])
        try:
            states: dict[str, int] = {}
            for view in self.services.manager().list():
                states[view["state"]] = states.get(view["state"], 0) + 1
            for state in ("running", "stopped"):
                states.setdefault(state, 0)
            for state, count in sorted(states.items()):
                family.add_metric([state], count)
        except DockpoolError:
            pass  # engine down: /healthz says so; the metric is simply absent
        yield family


class UsageCollector:
    """dockpool_usage_*_total{client=...}: what each configured client's instances used here,
    from the usage ledger at scrape time."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[CounterMetricFamily]:
        families = {
            "cpu_seconds": CounterMetricFamily("dockpool_usage_cpu_seconds", "CPU time used", labels=["client"]),
            "memory": CounterMetricFamily("dockpool_usage_memory_byte_seconds",
                                          "Memory held over time (bytes times seconds)", labels=["client"]),
            "gpu_seconds": CounterMetricFamily("dockpool_usage_gpu_seconds", "GPU time used (NVML's samples)",
                                               labels=["client"]),
            "network": CounterMetricFamily("dockpool_usage_network_bytes", "Bytes into and out of the instances",
                                           labels=["client", "direction"]),
            "disk": CounterMetricFamily("dockpool_usage_disk_bytes", "Bytes read and written", labels=["client", "direction"]),
        }
        try:
            totals = self.services.usage.per_client([c.name for c in self.services.config.clients])
        except DockpoolError:
            return  # an unreadable ledger: GET /v1/usage says why; the metrics are absent
        for client, used in sorted(totals.items()):
            families["cpu_seconds"].add_metric([client], used["cpu_seconds"])
            families["memory"].add_metric([client], used["memory_gib_hours"] * BYTE_SECONDS_PER_GIB_HOUR)
            families["gpu_seconds"].add_metric([client], used["gpu_seconds"])
            for direction, key in (("in", "rx_bytes"), ("out", "tx_bytes")):
                families["network"].add_metric([client, direction], used[key])
            for direction, key in (("read", "read_bytes"), ("write", "write_bytes")):
                families["disk"].add_metric([client, direction], used[key])
        yield from families.values()


def member_state(member: dict) -> str:
    if member.get("draining"):
        return "draining"
    return {True: "answering", False: "silent"}.get(member.get("answers"), "unchecked")


class FleetCollector:
    """dockpool_fleet_members{tier,state} read when scraped, and the events the fleet's parts counted."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("dockpool_fleet_members", "Live peers this provider knows, by tier "
                                   "(member: the fleet's, p2prc: posted, never trusted) and state", labels=["tier", "state"])
        counts = {(tier, state): 0 for tier in TIERS for state in MEMBER_STATES}
        for member in map(view, self.services.peers.members()):
            key = (member["tier"], member_state(member))
            counts[key] = counts.get(key, 0) + 1
        for (tier, state), count in sorted(counts.items()):
            family.add_metric([tier, state], count)
        yield family
        yield from self.services.events.collect()


class ReplicasCollector:
    """Each replica of an instance here: its age and what its last refresh shipped (names a client)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age = GaugeMetricFamily("dockpool_fleet_replica_age_seconds", "Seconds since the replica's state was read",
                                labels=["instance", "holder"])
        shipped = GaugeMetricFamily("dockpool_fleet_replica_last_shipped_bytes", "Bytes the replica's last refresh "
                                    "shipped (a full copy or what changed)", labels=["instance", "holder"])
        replicator, now = self.services.replicas, time.time()
        for name in replicator.replicated():
            state = replicator.state(name)
            if state:
                age.add_metric([name, state["holder"]], max(0.0, now - state["taken"]))
                shipped.add_metric([name, state["holder"]], state["shipped_bytes"])
        yield age
        yield shipped


def _registry(collectors: Iterable[object]) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)  # type: ignore[arg-type]
    return registry


class Metrics:
    """Two registries per app (tests build several apps in one process): the page anyone may
    read, and the series that name clients."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dockpool_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.create_seconds = Histogram("dockpool_instance_create_seconds", "Time to create an instance through the API",
                                        buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30), registry=self.registry)
        self.registry.register(InstancesCollector(services))
        self.registry.register(FleetCollector(services))
        self.private = _registry((UsageCollector(services), ReplicasCollector(services)))

    def count(self, route: str, status: int | str) -> None:
        self.requests.labels(method_label(), route, str(status)).inc()

    def page(self, with_clients: bool) -> bytes:
        """The page; ``with_clients``: and the series that name clients."""
        return generate_latest(self.registry) + (generate_latest(self.private) if with_clients else b"")

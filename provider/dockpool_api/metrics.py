"""The API's Prometheus metrics: requests by method, route and status, the time creations
take, the instances by state (read from the engine when scraped), and what each client used
(read from the usage ledger when scraped)."""
from __future__ import annotations

from typing import Iterator

from bottle import request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from dockpool.errors import DockpoolError

from .services import Services

# Metric labels take only these methods: any other word a caller sends counts as "other",
# so nobody can add series without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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
            "memory_gib_hours": CounterMetricFamily("dockpool_usage_memory_gib_hours", "Memory held over time",
                                                    labels=["client"]),
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
            families["memory_gib_hours"].add_metric([client], used["memory_gib_hours"])
            families["gpu_seconds"].add_metric([client], used["gpu_seconds"])
            for direction, key in (("in", "rx_bytes"), ("out", "tx_bytes")):
                families["network"].add_metric([client, direction], used[key])
            for direction, key in (("read", "read_bytes"), ("write", "write_bytes")):
                families["disk"].add_metric([client, direction], used[key])
        yield from families.values()


class Metrics:
    """One registry per app (tests build several apps in one process)."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dockpool_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.create_seconds = Histogram("dockpool_instance_create_seconds", "Time to create an instance through the API",
                                        buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30), registry=self.registry)
        self.registry.register(InstancesCollector(services))
        self.registry.register(UsageCollector(services))

    def count(self, route: str, status: int | str) -> None:
        self.requests.labels(method_label(), route, str(status)).inc()

    def page(self) -> bytes:
        return generate_latest(self.registry)

"""The API's Prometheus metrics: requests by method, route and status, the time creations
take, and the instances by state (read from the engine when scraped)."""
from __future__ import annotations

from typing import Iterator

from bottle import request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

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


class Metrics:
    """One registry per app (tests build several apps in one process)."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dockpool_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.create_seconds = Histogram("dockpool_instance_create_seconds", "Time to create an instance through the API",
                                        buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30), registry=self.registry)
        self.registry.register(InstancesCollector(services))

    def count(self, route: str, status: int | str) -> None:
        self.requests.labels(method_label(), route, str(status)).inc()

    def page(self) -> bytes:
        return generate_latest(self.registry)

"""A client's instances: create, list, read, stop, start, remove, move one elsewhere, its replica,
and what they used (the usage ledger)."""
from __future__ import annotations

import time

from bottle import Bottle, HTTPResponse, request

from dockpool.errors import InvalidInput

from .access import current_client
from .responses import json_body
from .routing import RouteContext
from .usage_report import as_csv


def add_instance_routes(app: Bottle, ctx: RouteContext) -> None:
    services = ctx.services

    @app.post("/v1/instances", access="client")
    def create_instance():
        who = current_client()
        started = time.monotonic()
        view = services.create(who, ctx.body_json())
        ctx.metrics.create_seconds.observe(time.monotonic() - started)
        return json_body(view, 201)

    @app.get("/v1/instances", access="client")
    def list_instances():
        return json_body({"instances": services.visible(current_client())})

    @app.get("/v1/instances/<ref>", access="client")
    def get_instance(ref: str):
        return json_body(services.get(current_client(), ref))

    @app.post("/v1/instances/<ref>/stop", access="client")
    def stop_instance(ref: str):
        return json_body(services.stop(current_client(), ref))

    @app.post("/v1/instances/<ref>/start", access="client")
    def start_instance(ref: str):
        return json_body(services.start(current_client(), ref))

    @app.delete("/v1/instances/<ref>", access="client")
    def remove_instance(ref: str):
        services.remove(current_client(), ref)
        return json_body({"removed": ref})

    @app.post("/v1/instances/<ref>/move", access="client")
    def move_instance(ref: str):
        return json_body(services.mover.move_out(current_client(), ref, ctx.body_json()))

    @app.post("/v1/instances/<ref>/replicate", access="client")
    def replicate_instance(ref: str):
        return json_body(services.replicas.refresh(services.find(current_client(), ref), asked=True))

    @app.get("/v1/usage", access="client")
    def usage():
        if request.query.get("format", "json") not in ("json", "csv"):
            raise InvalidInput("format: json or csv", "format")
        who = current_client()
        report = services.usage.report(who, dict(request.query.items()))
        whose = services.client_named(report["client"]) if report["client"] else None
        report["package"] = whose.package if whose else None
        report["budgets"] = services.budgets.status(whose) if whose else []
        report["charges"] = services.budgets.charges(whose) if whose else None  # credits, at each provider's prices
        if request.query.get("format") == "csv":
            return HTTPResponse(as_csv(report), headers={"Content-Type": "text/csv; charset=utf-8"})
        return json_body(report)

    @app.get("/v1/instances/<ref>/replicas", access="client")
    def instance_replicas(ref: str):
        return json_body({"replicas": services.replicas.shown(services.find(current_client(), ref))})

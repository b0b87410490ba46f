"""The provider's own routes: the status page, health, the OpenAPI document, metrics, what
it offers (specs, images) and the speed test."""
from __future__ import annotations

from bottle import Bottle, HTTPResponse, request, response
from prometheus_client import CONTENT_TYPE_LATEST

from dockpool import __version__
from dockpool.errors import DockpoolError, InvalidInput

from .access import sees_clients
from .fleet.drains import drain
from .openapi import openapi_document
from .responses import json_body, read_stream, zeros
from .routing import RouteContext
from .status_page import render as render_status


def add_service_routes(app: Bottle, ctx: RouteContext) -> None:
    config, services = ctx.config, ctx.services

    @app.get("/", access="reader")
    def status_page():
        who, notice = None, ""
        # Only the Authorization header, which the page's own script sends from its tab's
        # sessionStorage: never a cookie, which a page on any other port of this host could read.
        presented = request.get_header("Authorization")
        if presented:
            try:
                who = ctx.access.identify(presented)
            except DockpoolError as exc:
                notice = exc.message
        try:
            views = services.visible_all()
        except DockpoolError:
            views = None
        try:
            usage = {**services.usage.report(who, {}), "package": who.package,
                     "budgets": services.budgets.status(who)} if who else None
        except DockpoolError:
            usage = None  # an unreadable ledger: GET /v1/usage says why
        response.content_type = "text/html; charset=utf-8"
        response.set_header("Cache-Control", "no-store")
        return render_status(provider=config.provider_name, version=__version__, specs=services.specs(), views=views,
                             client=who, own=services.peers.me, fleet=ctx.fleet_view(), notice=notice, usage=usage)

    @app.get("/healthz", access="reader")
    def healthz():
        engine = services.engine_ok()
        return json_body({"status": "ok" if engine else "degraded", "engine": engine, "version": __version__,
                          "draining": services.drain.draining()}, 200 if engine else 503)

    @app.get("/openapi.json", access="open")
    def openapi():
        return json_body(openapi_document(__version__, app.routes))

    @app.get("/metrics", access="metrics")
    def metrics():
        return HTTPResponse(ctx.metrics.page(sees_clients()), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.get("/v1/specs", access="reader")
    def specs():
        return json_body(services.specs())

    @app.get("/v1/images", access="reader")
    def images():
        return json_body({"images": services.images()})

    add_speedtest_routes(app, ctx)
    add_drain_routes(app, ctx)


def add_drain_routes(app: Bottle, ctx: RouteContext) -> None:
    """The owner takes the machine back: while draining, no new instance comes (created or moved in)."""
    services = ctx.services

    @app.get("/v1/drain", access="reader")
    def drain_state():
        return json_body(services.drain.shown())

    @app.put("/v1/drain", access="operator")
    def set_drain():
        body = ctx.body_json()
        if not isinstance(body, dict) or set(body) != {"draining"} or not isinstance(body["draining"], bool):
            raise InvalidInput('the body is {"draining": true} to start draining, {"draining": false} to end it',
                               "draining")
        state = services.drain.set(body["draining"])
        services.peers.renew()  # the fleet hears it with this provider's next exchange
        return json_body(state)

    @app.post("/v1/drain/moves", access="operator")
    def drain_moves():
        return json_body(drain(services.drain, services.mover, services.instances, services.events))


def add_speedtest_routes(app: Bottle, ctx: RouteContext) -> None:
    config = ctx.config

    @app.get("/v1/speedtest/download", access="reader")
    def download():
        size = request.query.get("bytes", str(config.max_download_bytes))
        if not size.isdigit() or not 1 <= int(size) <= config.max_download_bytes:
            raise InvalidInput(f"bytes: a whole number from 1 to {config.max_download_bytes}", "bytes",
                               {"max": config.max_download_bytes})
        response.content_type = "application/octet-stream"
        response.content_length = int(size)
        return zeros(int(size))

    @app.post("/v1/speedtest/upload", access="reader")
    def upload():
        size, seconds = read_stream(config.max_upload_bytes)
        return json_body({"bytes": size, "seconds": round(seconds, 6)})

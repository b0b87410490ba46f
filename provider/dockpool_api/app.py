"""The Bottle application: routes, JSON errors, authentication and metrics."""
from __future__ import annotations

import json
import logging
import math
import time
from functools import wraps
from typing import Any, Callable, Iterator

from bottle import Bottle, HTTPError, HTTPResponse, request, response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from dockpool import __version__
from dockpool.errors import Busy, DockpoolError, InvalidInput, NotFound

from .access import GRANT_KEY, AccessPlugin, check_declared, current_client
from .auth import Authenticator
from .config import ApiConfig
from .openapi import openapi_document
from .p2prc import add_p2prc_routes
from .responses import PayloadTooLarge, json_body, parse_json, read_stream, zeros
from .services import Services
from .status_page import render as render_status

log = logging.getLogger("dockpool.api")
# Metric labels take only these methods: any other word a caller sends counts as "other",
# so nobody can add series without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
RETRY_AFTER_UNAVAILABLE = 5  # seconds: what a client waits after a 503 (the engine busy or restarting)


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


def make_app(config: ApiConfig, services: Services | None = None) -> Bottle:
    """Build the app; ``services`` can be given to share one across apps (tests)."""
    services = services or Services(config)
    registry = CollectorRegistry()
    requests_total = Counter("dockpool_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry)
    create_seconds = Histogram("dockpool_instance_create_seconds", "Time to create an instance through the API",
                               buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30), registry=registry)
    registry.register(InstancesCollector(services))
    app = Bottle()
    app.config["dockpool.services"] = services

    def error_page(error: HTTPError) -> str:
        error.content_type = "application/json"
        requests_total.labels(method_label(), "(none)", str(error.status_code)).inc()
        return json.dumps({"error": error.body if isinstance(error.body, str) and error.body else error.status_line,
                           "detail": None})

    app.default_error_handler = error_page

    def api_plugin(callback: Callable) -> Callable:
        """Map core errors to JSON statuses, count every request, never leak a traceback."""

        @wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            route = request.route.rule
            try:
                result = callback(*args, **kwargs)
                status = result.status_code if isinstance(result, HTTPResponse) else response.status_code
            except HTTPResponse as answer:
                requests_total.labels(method_label(), route, str(answer.status_code)).inc()
                raise
            except DockpoolError as exc:
                status = exc.http_status
                body = exc.as_dict()
                body.setdefault("detail", None)
                headers = {"Content-Type": "application/json"}
                if isinstance(exc.detail, dict) and "retry_after" in exc.detail:
                    headers["Retry-After"] = str(exc.detail["retry_after"])
                if status >= 500:  # the provider's side failed: the operator needs to see why
                    log.warning("%s %s: %s", request.method, request.path, exc.message)
                    headers.setdefault("Retry-After", str(RETRY_AFTER_UNAVAILABLE))
                requests_total.labels(method_label(), route, str(status)).inc()
                raise HTTPResponse(json.dumps(body), status=status, headers=headers) from None
            except Exception:  # any failure: logged whole, answered without internals
                log.exception("%s %s failed", request.method, request.path)
                requests_total.labels(method_label(), route, "500").inc()
                raise HTTPResponse(json.dumps({"error": "internal error; the provider's log has the details",
                                               "detail": None}), status=500,
                                   headers={"Content-Type": "application/json"}) from None
            requests_total.labels(method_label(), route, str(status)).inc()
            return result

        return wrapper

    app.install(api_plugin)
    access = AccessPlugin(config, Authenticator(config.clients), services.mover.grants,
                          services.policy.ssh_host)
    app.install(access)

    def body_json() -> Any:
        raw = request.body.read(config.max_json_bytes + 1)
        if len(raw) > config.max_json_bytes:
            raise PayloadTooLarge(f"the JSON body exceeds {config.max_json_bytes} bytes", "body")
        return parse_json(raw, "body")

    # ---- service ---------------------------------------------------------------------------

    def fleet_view() -> dict[str, Any]:
        return {"provider": config.provider_name, "fleet_port": config.fleet_port, **services.gossip.status(),
                "members": services.peers.members()}

    @app.get("/", access="reader")
    def status_page():
        who, notice = None, ""
        # Only the Authorization header, which the page's own script sends from its tab's
        # sessionStorage: never a cookie, which a page on any other port of this host could read.
        presented = request.get_header("Authorization")
        if presented:
            try:
                who = access.identify(presented)
            except DockpoolError as exc:
                notice = exc.message
        try:
            views = services.visible_all()
        except DockpoolError:
            views = None
        response.content_type = "text/html; charset=utf-8"
        response.set_header("Cache-Control", "no-store")
        return render_status(provider=config.provider_name, version=__version__, specs=services.specs(), views=views,
                             client=who, own=services.peers.me, fleet=fleet_view(), notice=notice)

    @app.get("/healthz", access="reader")
    def healthz():
        engine = services.engine_ok()
        return json_body({"status": "ok" if engine else "degraded", "engine": engine, "version": __version__},
                         200 if engine else 503)

    @app.get("/openapi.json", access="open")
    def openapi():
        return json_body(openapi_document(__version__))

    @app.get("/metrics", access="reader")
    def metrics():
        return HTTPResponse(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ---- v1 --------------------------------------------------------------------------------

    @app.get("/v1/specs", access="reader")
    def specs():
        return json_body(services.specs())

    @app.get("/v1/images", access="reader")
    def images():
        return json_body({"images": services.images()})

    @app.post("/v1/instances", access="client")
    def create_instance():
        who = current_client()
        started = time.monotonic()
        view = services.create(who, body_json())
        create_seconds.observe(time.monotonic() - started)
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
        return json_body(services.mover.move_out(current_client(), ref, body_json()))

    @app.post("/v1/moves", access="client")
    def offer_move():
        return json_body(services.mover.offer(current_client(), body_json()), 201)

    @app.get("/v1/moves/<move_id>", access="client")
    def move_progress(move_id: str):
        return json_body(services.mover.progress(current_client(), move_id))

    @app.delete("/v1/moves/<move_id>", access="client")
    def cancel_move(move_id: str):
        services.mover.grants.cancel(current_client(), move_id)
        return json_body({"cancelled": move_id})

    @app.post("/v1/moves/<move_id>/pull", access="grant")
    def pull_move(move_id: str):
        return json_body(services.mover.pull(request.environ[GRANT_KEY], move_id, body_json()), 201)

    @app.get("/v1/exports/<export_id>", access="grant")
    def export_snapshot(export_id: str):
        chunks = services.mover.export(request.environ[GRANT_KEY], export_id)
        response.content_type = "application/x-tar"
        return chunks

    @app.get("/v1/peers", access="reader")
    def peers():
        return json_body(services.peers.table())

    @app.post("/v1/peers", access="peer")
    def merge_peers():
        # What clients and P2PRC peers post is P2PRC's tier: shown, never a member (membership.py).
        return json_body(services.peers.merge_p2prc(body_json()))

    @app.delete("/v1/peers/<ref>", access="admin")
    def remove_peer(ref: str):
        removed = services.peers.remove(ref)
        if not removed:
            raise NotFound(f"no peer is called {ref!r} or has that address", "ref")
        return json_body({"removed": removed})

    @app.post("/v1/fleet/exchange", access="fleet")
    def exchange_tables():
        # Other providers' exchanges are answered a bounded number of times per interval, so what
        # this provider sends grows with its table, not with how many peers happen to pick it.
        if not services.answers.take():
            raise Busy(f"peer exchanges: this provider answers {config.gossip_answers} per "
                       f"{config.gossip_interval:g} s; exchange with another peer", "ip_address",
                       {"retry_after": math.ceil(config.gossip_interval)})
        answer = json_body(services.peers.merge(body_json()))
        services.traffic.add(len(answer.body))
        return answer

    @app.get("/v1/fleet/identity", access="fleet")
    def identity():
        return json_body({"provider": config.provider_name, "membership_key": services.peers.public_key})

    @app.get("/v1/fleet", access="reader")
    def fleet():
        return json_body(fleet_view())

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

    add_p2prc_routes(app, config, services)
    check_declared(app)
    return app

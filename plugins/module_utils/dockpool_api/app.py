"""The Bottle application: routes, JSON errors, authentication and metrics."""
from __future__ import annotations

import json
import logging
import time
from functools import wraps
from typing import Any, Callable, Iterator, Optional

from bottle import Bottle, HTTPError, HTTPResponse, request, response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from dockpool import __version__
from dockpool.errors import DockpoolError, InvalidInput

from .auth import Authenticator
from .config import ApiConfig, Client
from .openapi import openapi_document
from .p2prc import add_p2prc_routes
from .responses import PayloadTooLarge, json_body, read_stream, zeros
from .services import Services
from .status_page import render as render_status

log = logging.getLogger("dockpool.api")


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
    auth = Authenticator(config.clients)
    registry = CollectorRegistry()
    requests_total = Counter("dockpool_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry)
    create_seconds = Histogram("dockpool_instance_create_seconds", "Time to create an instance through the API",
                               buckets=(0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30), registry=registry)
    registry.register(InstancesCollector(services))
    app = Bottle()
    app.config["dockpool.services"] = services

    def error_page(error: HTTPError) -> str:
        error.content_type = "application/json"
        requests_total.labels(request.method, "(none)", str(error.status_code)).inc()
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
                requests_total.labels(request.method, route, str(answer.status_code)).inc()
                raise
            except DockpoolError as exc:
                status = exc.http_status
                body = exc.as_dict()
                body.setdefault("detail", None)
                headers = {"Content-Type": "application/json"}
                if isinstance(exc.detail, dict) and "retry_after" in exc.detail:
                    headers["Retry-After"] = str(exc.detail["retry_after"])
                requests_total.labels(request.method, route, str(status)).inc()
                raise HTTPResponse(json.dumps(body), status=status, headers=headers) from None
            except Exception:  # pylint: disable=broad-except  # logged whole, answered without internals
                log.exception("%s %s failed", request.method, request.path)
                requests_total.labels(request.method, route, "500").inc()
                raise HTTPResponse(json.dumps({"error": "internal error; the provider's log has the details",
                                               "detail": None}), status=500,
                                   headers={"Content-Type": "application/json"}) from None
            requests_total.labels(request.method, route, str(status)).inc()
            return result

        return wrapper

    app.install(api_plugin)

    def client_from(header: Optional[str]) -> Client:
        # The socket peer, not X-Forwarded-For, which a client could forge to dodge the limiter.
        return auth.client(header, request.environ.get("REMOTE_ADDR") or "unknown")

    def client() -> Client:
        return client_from(request.get_header("Authorization"))

    def reader() -> None:
        """Read-only routes are open unless the operator closed them."""
        if not config.open_read_routes:
            client()

    def body_json() -> Any:
        raw = request.body.read(config.max_json_bytes + 1)
        if len(raw) > config.max_json_bytes:
            raise PayloadTooLarge(f"the JSON body exceeds {config.max_json_bytes} bytes", "body")
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise InvalidInput(f"the body is not valid JSON ({exc})", "body") from None

    # ---- service ---------------------------------------------------------------------------

    @app.get("/")
    def status_page():
        reader()
        who, notice = None, ""
        # The page's own script moves a token from the URL's #fragment into this cookie;
        # the JSON routes never read it.
        presented = request.get_header("Authorization") or (
            f"Bearer {request.get_cookie('dockpool_token')}" if request.get_cookie("dockpool_token") else None)
        if presented:
            try:
                who = client_from(presented)
            except DockpoolError as exc:
                notice = exc.message
        try:
            views = services.visible_all()
        except DockpoolError:
            views = None
        response.content_type = "text/html; charset=utf-8"
        response.set_header("Cache-Control", "no-store")
        return render_status(provider=config.provider_name, version=__version__, specs=services.specs(), views=views,
                             client=who, peers=services.peers.table()["ip_address"], notice=notice)

    @app.get("/healthz")
    def healthz():
        reader()
        engine = services.engine_ok()
        return json_body({"status": "ok" if engine else "degraded", "engine": engine, "version": __version__},
                         200 if engine else 503)

    @app.get("/openapi.json")
    def openapi():
        return json_body(openapi_document(__version__))

    @app.get("/metrics")
    def metrics():
        reader()
        return HTTPResponse(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ---- v1 --------------------------------------------------------------------------------

    @app.get("/v1/specs")
    def specs():
        reader()
        return json_body(services.specs())

    @app.get("/v1/images")
    def images():
        reader()
        return json_body({"images": services.images()})

    @app.post("/v1/instances")
    def create_instance():
        who = client()
        started = time.monotonic()
        view = services.create(who, body_json())
        create_seconds.observe(time.monotonic() - started)
        return json_body(view, 201)

    @app.get("/v1/instances")
    def list_instances():
        return json_body({"instances": services.visible(client())})

    @app.get("/v1/instances/<ref>")
    def get_instance(ref: str):
        return json_body(services.get(client(), ref))

    @app.post("/v1/instances/<ref>/stop")
    def stop_instance(ref: str):
        return json_body(services.stop(client(), ref))

    @app.post("/v1/instances/<ref>/start")
    def start_instance(ref: str):
        return json_body(services.start(client(), ref))

    @app.delete("/v1/instances/<ref>")
    def remove_instance(ref: str):
        services.remove(client(), ref)
        return json_body({"removed": ref})

    @app.get("/v1/peers")
    def peers():
        reader()
        return json_body(services.peers.table())

    @app.post("/v1/peers")
    def merge_peers():
        return json_body(services.peers.merge(body_json()))

    @app.get("/v1/speedtest/download")
    def download():
        reader()
        size = request.query.get("bytes", str(config.max_download_bytes))
        if not size.isdigit() or not 1 <= int(size) <= config.max_download_bytes:
            raise InvalidInput(f"bytes: a whole number from 1 to {config.max_download_bytes}", "bytes",
                               {"max": config.max_download_bytes})
        response.content_type = "application/octet-stream"
        response.content_length = int(size)
        return zeros(int(size))

    @app.post("/v1/speedtest/upload")
    def upload():
        reader()
        size, seconds = read_stream(config.max_upload_bytes)
        return json_body({"bytes": size, "seconds": round(seconds, 6)})

    add_p2prc_routes(app, config, services, client, reader)
    return app

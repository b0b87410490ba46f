"""The Bottle application: JSON errors, access rules and metrics around the routes, which
are grouped by concern in their own modules (service_routes, instance_routes,
fleet.routes, p2prc)."""
from __future__ import annotations

import json
import logging
from functools import wraps
from typing import Any, Callable

from bottle import Bottle, HTTPError, HTTPResponse, request, response

from dockpool.errors import DockpoolError

from .access import AccessPlugin, check_declared
from .auth import Authenticator
from .config import ApiConfig
from .fleet.routes import add_fleet_routes, add_move_routes, add_replica_routes
from .instance_routes import add_instance_routes
from .metrics import Metrics
from .openapi import check_described
from .p2prc import add_p2prc_routes
from .routing import RouteContext
from .service_routes import add_service_routes
from .services import Services
from .wiring import build

log = logging.getLogger("dockpool.api")
RETRY_AFTER_UNAVAILABLE = 5  # seconds: what a client waits after a 503 (the engine busy or restarting)
JSON = {"Content-Type": "application/json"}


def _error_answer(exc: DockpoolError) -> HTTPResponse:
    """A core error as its JSON status; the provider's own failures are logged for the operator."""
    body = exc.as_dict()
    body.setdefault("detail", None)
    refusal = request.route.config.get("refusal") if exc.http_status < 500 else None
    if refusal:  # a route whose callers read only the text (P2PRC's client): what did not happen, first
        body["error"] = f"{refusal}: {body['error']}"
    headers = dict(JSON)
    if isinstance(exc.detail, dict) and "retry_after" in exc.detail:
        headers["Retry-After"] = str(exc.detail["retry_after"])
    if exc.http_status >= 500:  # the provider's side failed: the operator needs to see why
        log.warning("%s %s: %s", request.method, request.path, exc.message)
        headers.setdefault("Retry-After", str(RETRY_AFTER_UNAVAILABLE))
    return HTTPResponse(json.dumps(body), status=exc.http_status, headers=headers)


def json_errors(metrics: Metrics) -> Callable[[Callable], Callable]:
    """A plugin: core errors to JSON statuses, every request counted, never a traceback leaked."""

    def plugin(callback: Callable) -> Callable:
        @wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            route = request.route.rule
            try:
                result = callback(*args, **kwargs)
            except HTTPResponse as answer:
                metrics.count(route, answer.status_code)
                raise
            except DockpoolError as exc:
                metrics.count(route, exc.http_status)
                raise _error_answer(exc) from None
            except Exception:  # any failure: logged whole, answered without internals
                log.exception("%s %s failed", request.method, request.path)
                metrics.count(route, 500)
                raise HTTPResponse(json.dumps({"error": "internal error; the provider's log has the details",
                                               "detail": None}), status=500, headers=JSON) from None
            metrics.count(route, result.status_code if isinstance(result, HTTPResponse) else response.status_code)
            return result

        return wrapper

    return plugin


def make_app(config: ApiConfig, services: Services | None = None) -> Bottle:
    """Build the app; ``services`` can be given to share one across apps (tests)."""
    services = services or build(config)
    metrics = Metrics(services)
    app = Bottle()
    app.config["dockpool.services"] = services

    def error_page(error: HTTPError) -> str:  # what Bottle itself answers (404, 405)
        error.content_type = "application/json"
        metrics.count("(none)", error.status_code)
        return json.dumps({"error": error.body if isinstance(error.body, str) and error.body else error.status_line,
                           "detail": None})

    app.default_error_handler = error_page
    app.install(json_errors(metrics))
    access = AccessPlugin(config, Authenticator(config.clients), services.mover.grants, services.policy.ssh_host)
    app.install(access)
    ctx = RouteContext(config, services, access, metrics)
    for add in (add_service_routes, add_instance_routes, add_move_routes, add_replica_routes, add_fleet_routes):
        add(app, ctx)
    add_p2prc_routes(app, config, services)
    check_declared(app)
    check_described(app.routes)  # and its entry in the OpenAPI document
    return app

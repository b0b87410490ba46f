"""The OpenAPI document against the app's own routes (issue 32): every route the app serves, on
either listener, appears with its path and its parameters' names, and nothing else does. The
expected paths are read from each route's rule here, by a parser of this test's own."""
from __future__ import annotations

import re

import pytest
from bottle import Bottle
from openapi_spec_validator import validate
from webtest import TestApp

from dockpool_api.app import make_app
from dockpool_api.config import config_from_dict
from dockpool_api.fleet.tls import FLEET_PEER
from dockpool_api.openapi import OPERATIONS, TOKEN_ACCESS, check_described, path_of
from support.api_config import make_config


@pytest.fixture
def app(tmp_path) -> Bottle:
    return make_app(config_from_dict(make_config(tmp_path)))


def expected_path(rule: str) -> tuple[str, list[str]]:
    """``/v1/moves/<move_id>/pull`` is ``/v1/moves/{move_id}/pull`` with the parameter move_id."""
    names = [part[1:-1].split(":")[0] for part in re.findall(r"<[^>]+>", rule)]
    path = rule
    for part, name in zip(re.findall(r"<[^>]+>", rule), names):
        path = path.replace(part, "{" + name + "}", 1)
    return path, names


def served(app: Bottle, environ: dict | None = None) -> dict:
    return TestApp(app).get("/openapi.json", extra_environ=environ or {}).json


def test_every_route_is_in_the_document_with_its_path_and_parameter_names_and_nothing_else(app):
    document = served(app)
    validate(document)
    expected = {(route.method.lower(), expected_path(route.rule)[0]): route for route in app.routes}
    described = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert described == set(expected)
    assert len(expected) == len(app.routes) > 40  # no two routes of the app fall on one operation
    for (method, path), route in expected.items():
        operation = document["paths"][path][method]
        in_path = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        assert in_path == expected_path(route.rule)[1], (route.method, route.rule, in_path)
        assert all(p["required"] is True for p in operation.get("parameters", []) if p["in"] == "path")
        assert operation["x-dockpool-access"] == route.config["access"], route.rule
        assert ("security" in operation) is (route.config["access"] in TOKEN_ACCESS), route.rule
        assert operation["summary"].strip() and operation["responses"], route.rule


def test_the_fleet_listener_serves_the_same_document(app):
    """One app behind both listeners: the fleet's (a provider's certificate in the environ) answers
    /openapi.json with the same paths, its own routes (access fleet and grant) among them."""
    fleet = served(app, {FLEET_PEER: "another-provider"})
    assert fleet == served(app)
    fleet_routes = {(r.method.lower(), expected_path(r.rule)[0]) for r in app.routes
                    if r.config["access"] in ("fleet", "grant")}
    assert {("post", "/v1/moves/{move_id}/pull"), ("get", "/v1/exports/{export_id}"),
            ("put", "/v1/fleet/replicas/{name}")} <= fleet_routes
    assert all(method in fleet["paths"][path] for method, path in fleet_routes)


def test_the_names_that_had_drifted_are_the_routes_own(app):
    paths = served(app)["paths"]
    assert "/v1/moves/{move_id}" in paths and "/v1/fleet/moves/{export_id}" in paths
    assert "/v1/fleet/replicas/{name}" in paths and "/v1/peers/{ref}" in paths
    assert not [p for p in paths if "{move}" in p or p.startswith("/v1/fleet/replicas/{ref}")]


def test_the_table_describes_exactly_the_apps_routes(app):
    assert set(OPERATIONS) == {(route.method, route.rule) for route in app.routes}


def test_a_route_without_an_entry_stops_the_build():
    app = Bottle()
    app.get("/v1/instances/<id>", access="client", callback=lambda id: id)  # the table says <ref>
    with pytest.raises(ValueError, match=r"route GET /v1/instances/<id> is not described"):
        check_described(app.routes)
    check_described(app.routes, {("GET", "/v1/instances/<id>"): {}})  # described: no error


def test_rules_with_filters_become_plain_path_parameters():
    assert path_of("/a/<x:re:[0-9]+>/b/<y>/<z:path>") == ("/a/{x}/b/{y}/{z}", ["x", "y", "z"])
    assert path_of("/healthz") == ("/healthz", [])

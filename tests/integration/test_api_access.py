"""Who may call each route: declared where the route is defined, checked here against
a table, so a new route without a rule, or with a different one, fails the suite."""
from __future__ import annotations

import pytest
from bottle import Bottle
from webtest import TestApp

from dockpool_api.access import AccessPlugin, check_declared, current_client
from dockpool_api.app import make_app
from dockpool_api.auth import Authenticator, Unauthorized
from dockpool_api.config import config_from_dict
from dockpool_api.fleet.tls import FLEET_PEER
from support.api_config import TOKENS, make_config

pytestmark = pytest.mark.engine

ACCESS = {
    ("GET", "/"): "reader",
    ("GET", "/healthz"): "reader",
    ("GET", "/openapi.json"): "open",
    ("GET", "/metrics"): "metrics",
    ("GET", "/v1/specs"): "reader",
    ("GET", "/v1/images"): "reader",
    ("GET", "/v1/drain"): "reader",
    ("PUT", "/v1/drain"): "operator",
    ("POST", "/v1/drain/moves"): "operator",
    ("POST", "/v1/instances"): "client",
    ("GET", "/v1/instances"): "client",
    ("GET", "/v1/instances/<ref>"): "client",
    ("POST", "/v1/instances/<ref>/stop"): "client",
    ("POST", "/v1/instances/<ref>/start"): "client",
    ("DELETE", "/v1/instances/<ref>"): "client",
    ("POST", "/v1/instances/<ref>/replicate"): "client",
    ("GET", "/v1/instances/<ref>/replicas"): "client",
    ("GET", "/v1/usage"): "client",
    ("GET", "/v1/peers"): "reader",
    ("POST", "/v1/peers"): "peer",
    ("DELETE", "/v1/peers/<ref>"): "admin",
    ("GET", "/v1/fleet"): "reader",
    ("POST", "/v1/fleet/gossip"): "fleet",
    ("POST", "/v1/fleet/probe"): "fleet",
    ("GET", "/v1/fleet/identity"): "fleet",
    ("POST", "/v1/fleet/spend"): "fleet",
    ("POST", "/v1/instances/<ref>/move"): "client",
    ("POST", "/v1/moves"): "client",
    ("GET", "/v1/moves/<move_id>"): "client",
    ("DELETE", "/v1/moves/<move_id>"): "client",
    ("POST", "/v1/fleet/offers"): "fleet",
    ("GET", "/v1/fleet/moves/<export_id>"): "fleet",
    ("PUT", "/v1/fleet/replicas/<name>"): "fleet",
    ("GET", "/v1/fleet/replicas/<name>"): "fleet",
    ("DELETE", "/v1/fleet/replicas/<name>"): "fleet",
    ("GET", "/v1/replicas"): "client",
    ("POST", "/v1/replicas/<source>/<name>/restore"): "client",
    ("POST", "/v1/moves/<move_id>/pull"): "grant",
    ("GET", "/v1/exports/<export_id>"): "grant",
    ("GET", "/v1/speedtest/download"): "reader",
    ("POST", "/v1/speedtest/upload"): "reader",
    ("GET", "/server_info"): "reader",
    ("GET", "/50"): "reader",
    ("GET", "/upload"): "reader",
    ("POST", "/upload"): "reader",
    ("POST", "/IpTable"): "peer",
    ("GET", "/startcontainer"): "p2prc",
    ("GET", "/RemoveContainer"): "p2prc",
    ("GET", "/ShowImages"): "reader",
}


def app_with(tmp_path, **overrides) -> TestApp:
    return TestApp(make_app(config_from_dict(make_config(tmp_path, **overrides))))


def test_every_route_declares_the_access_the_table_gives_it(tmp_path):
    app = app_with(tmp_path).app
    assert {(r.method, r.rule): r.config.get("access") for r in app.routes} == ACCESS


def test_a_route_without_a_rule_is_an_error_when_the_app_is_built():
    app = Bottle()
    app.get("/fine", access="open", callback=lambda: "ok")
    app.post("/forgotten", callback=lambda: "ok")
    with pytest.raises(ValueError, match="POST /forgotten declares no access rule"):
        check_declared(app)


def _call(api: TestApp, method: str, rule: str, **kwargs):
    path = rule.replace("<ref>", "nosuch")
    return api.request(path, method=method, expect_errors=True, **kwargs)


@pytest.mark.parametrize("method, rule", sorted(ACCESS))
def test_anonymous_callers_get_exactly_the_open_routes(tmp_path, method, rule):
    answer = _call(app_with(tmp_path), method, rule)
    needs_token = ACCESS[(method, rule)] in ("client", "admin", "operator", "peer", "p2prc", "fleet", "grant")
    assert (answer.status_int == 401) is needs_token, (method, rule, answer.status_int, answer.body[:200])


@pytest.mark.parametrize("method, rule", sorted(k for k, v in ACCESS.items() if v == "reader"))
def test_closing_read_routes_closes_every_reader_route(tmp_path, method, rule):
    closed = app_with(tmp_path, open_read_routes=False)
    assert _call(closed, method, rule).status_int == 401
    opened = _call(closed, method, rule, headers={"Authorization": f"Bearer {TOKENS['bob']}"})
    assert opened.status_int != 401


def test_p2prc_peers_may_write_the_table_only_from_trusted_networks(tmp_path):
    api = app_with(tmp_path, peer_sources=["192.0.2.0/24"], peer_networks=[], peer_deny_networks=[])
    table = {"ip_address": [{"Name": "p", "IPV4": "198.51.100.7", "ServerPort": "8088"}]}
    trusted = api.post_json("/v1/peers", table, extra_environ={"REMOTE_ADDR": "192.0.2.10"}, expect_errors=True)
    # Let in (not 401); its peer is outside peer_networks, so refused before any connection.
    assert trusted.status_int == 400 and trusted.json["field"] == "ip_address[0].IPV4", trusted.json
    stranger = api.post_json("/v1/peers", table, extra_environ={"REMOTE_ADDR": "203.0.113.5"}, expect_errors=True)
    assert stranger.status_int == 401


@pytest.mark.parametrize("who", ["alice", "ops"])
def test_no_client_token_opens_a_fleet_route_on_the_clients_listener(tmp_path, who):
    api = app_with(tmp_path, peer_networks=[], peer_deny_networks=[])
    token = {"Authorization": f"Bearer {TOKENS[who]}"}
    table = {"ip_address": [{"Name": "p", "IPV4": "198.51.100.7", "ServerPort": "8088"}]}
    for method, rule in sorted(k for k, v in ACCESS.items() if v in ("fleet", "grant")):
        answer = _call(api, method, rule, headers=token)
        assert answer.status_int == 401 and "fleet" in answer.json["error"], (method, rule)
    # An admin may remove what a client posted; the posting itself never made a member.
    assert api.post_json("/v1/peers", table, headers=token, expect_errors=True).status_int in (200, 400, 503)
    removed = api.delete("/v1/peers/p", headers=token, expect_errors=True)
    assert removed.status_int == (404 if who == "ops" else 401)


def test_the_fleet_listener_serves_only_the_routes_between_providers(tmp_path):
    """What the fleet's listener puts in the environ (the calling provider's certificate name, which
    no header can set): the client routes are refused there, whatever token comes along."""
    api = app_with(tmp_path)
    fleet = {FLEET_PEER: "another-provider"}
    assert api.get("/v1/fleet/identity", extra_environ=fleet).json["provider"] == "testprov"
    assert api.get("/openapi.json", extra_environ=fleet).status_int == 200
    for method, rule in (("GET", "/v1/instances"), ("GET", "/v1/specs"), ("POST", "/v1/peers"), ("GET", "/")):
        answer = _call(api, method, rule, environ=dict(fleet), headers={"Authorization": f"Bearer {TOKENS['ops']}"})
        assert answer.status_int == 401 and "only the routes between providers" in answer.json["error"], rule
    # A grant is good only from the provider it was granted to: unknown here, refused.
    assert _call(api, "GET", "/v1/exports/x", environ=dict(fleet),
                 headers={"Authorization": "Bearer guessed"}).status_int == 401


def test_admin_routes_take_only_an_admins_token(tmp_path):
    config = config_from_dict(make_config(tmp_path))
    app = Bottle()
    app.config["catchall"] = False  # the plugin's refusal reaches the test as the exception it raises
    app.install(AccessPlugin(config, Authenticator(config.clients), None, "127.0.0.1"))
    app.get("/admin-only", access="admin", callback=lambda: {"who": current_client().name})
    api = TestApp(app)
    assert api.get("/admin-only", headers={"Authorization": f"Bearer {TOKENS['ops']}"}).json == {"who": "ops"}
    with pytest.raises(Unauthorized, match="administrators"):
        api.get("/admin-only", headers={"Authorization": f"Bearer {TOKENS['bob']}"})

"""The provider API through WebTest, on the real engine: every route, every status."""
from __future__ import annotations

import base64
import json

import pytest
from webtest import TestApp

from dockpool.errors import InvalidInput
from dockpool_api.app import make_app
from dockpool_api.config import config_from_dict
from support.api_config import TOKENS, make_config
from support.ssh import ssh_run

pytestmark = pytest.mark.engine


def auth(who: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[who]}"}




@pytest.fixture
def api(tmp_path):
    return TestApp(make_app(config_from_dict(make_config(tmp_path))))


def test_read_routes_are_open_and_json(api):
    health = api.get("/healthz")
    assert health.json == {"status": "ok", "engine": True, "version": health.json["version"], "draining": False}
    assert {"/v1/instances", "/server_info", "/startcontainer", "/IpTable"} <= set(api.get("/openapi.json").json["paths"])
    specs = api.get("/v1/specs").json
    assert specs["cpu"]["logical_cpus"] >= 1 and specs["gpus"] == []
    assert [i["name"] for i in api.get("/v1/images").json["images"]] == ["debian-sshd"]
    info = api.get("/server_info").json
    assert list(info)[:6] == ["Hostname", "Platform", "CPU", "RAM", "Disk", "GPU"]
    assert isinstance(info["RAM"], int) and isinstance(info["Disk"], int) and info["GPU"] is None
    assert info["RAM"] == specs["memory"]["total"] // 2**20
    shown = api.get("/ShowImages").json
    assert shown == {"DockerContainer": [{"DockerContainerName": "debian-sshd",
                                          "ContainerDescription": "Debian 12 with OpenSSH: log in as root with your SSH key (no passwords)."}]}
    assert api.get("/v1/peers").json["ip_address"][0]["Name"] == "testprov"
    assert "dockpool_http_requests_total" in api.get("/metrics").text


def test_read_routes_can_be_closed(tmp_path):
    api = TestApp(make_app(config_from_dict(make_config(tmp_path, open_read_routes=False))))
    for path in ("/v1/specs", "/v1/images", "/server_info", "/healthz", "/metrics", "/ShowImages", "/v1/peers", "/50"):
        assert api.get(path, expect_errors=True).status_int == 401, path
    assert api.get("/v1/specs", headers=auth("bob")).status_int == 200
    assert api.get("/openapi.json").status_int == 200  # the description stays public


def test_lifecycle_and_ownership(api, engine, keypair, cleanup):
    key, public = keypair
    created = api.post_json("/v1/instances", {"public_key": public, "memory_reservation": "128m", "extra_ports": 1},
                            headers=auth("alice"))
    assert created.status_int == 201
    view = created.json
    assert view["name"] == "alice-testprov-1" and view["owner"] == "alice" and view["state"] == "running"
    assert view["limits"]["memory_reservation"] == 128 * 2**20 and view["limits"]["memory"] == 256 * 2**20  # soft ask, hard cap
    assert view["limits"]["disk_limit"] == 2**30
    assert view["ssh"]["jump_command"] == f"ssh -J iaas-client@127.0.0.1:22000 -p {view['ssh']['port']} root@127.0.0.1"
    assert [p["name"] for p in view["ports"]] == ["SSH", "extra-1"]
    assert ssh_run(key, view["ssh"]["port"], "hostname").stdout.strip() == "alice-testprov-1"

    assert [v["id"] for v in api.get("/v1/instances", headers=auth("alice")).json["instances"]] == [view["id"]]
    assert api.get("/v1/instances", headers=auth("bob")).json == {"instances": []}
    for method, path in (("get", ""), ("post", "/stop"), ("post", "/start"), ("delete", "")):
        answer = getattr(api, method)(f"/v1/instances/{view['id']}{path}", headers=auth("bob"), expect_errors=True)
        assert answer.status_int == 404 and answer.json["field"] == "id", (method, path)
    assert view["id"] in [v["id"] for v in api.get("/v1/instances", headers=auth("ops")).json["instances"]]

    stopped = api.post(f"/v1/instances/{view['name']}/stop", headers=auth("alice")).json
    assert stopped["state"] == "stopped" and engine.api.inspect_container(view["id"])["State"]["Status"] == "exited"
    assert api.post(f"/v1/instances/{view['name']}/start", headers=auth("alice")).json["state"] == "running"
    assert api.get(f"/v1/instances/{view['id']}", headers=auth("alice")).json["disk_usage"] is None  # no watchdog pass yet
    assert api.delete(f"/v1/instances/{view['id']}", headers=auth("ops")).json == {"removed": view["id"]}
    assert api.get(f"/v1/instances/{view['id']}", headers=auth("alice"), expect_errors=True).status_int == 404
    metrics = api.get("/metrics").text
    assert "dockpool_instance_create_seconds_count 1.0" in metrics
    assert 'dockpool_http_requests_total{method="POST",route="/v1/instances",status="201"} 1.0' in metrics


BAD_CREATIONS = [
    (None, {}, 401, "Authorization"),
    ("wrong", {}, 401, "Authorization"),
    ("alice", "not json", 400, "body"),
    ("alice", [1, 2], 400, "body"),
    ("alice", {"public_key": "K", "colour": "red"}, 400, "colour"),
    ("alice", {}, 400, "public_key"),
    ("alice", {"public_key": "ssh-ed25519 AAAAbroken"}, 400, "public_key"),
    ("alice", {"public_key": 'command="sh" ssh-ed25519 AAAA'}, 400, "public_key"),
    ("alice", {"memory": "512x"}, 400, "memory"),
    ("alice", {"memory": "2g"}, 400, "memory"),
    ("alice", {"memory": True}, 400, "memory"),
    ("alice", {"disk_limit": "9g"}, 400, "disk_limit"),
    ("alice", {"cpus": "two"}, 400, "cpus"),
    ("alice", {"cpus": 0}, 400, "cpus"),
    ("alice", {"cpus": 2}, 400, "cpus"),
    ("alice", {"extra_ports": -1}, 400, "extra_ports"),
    ("alice", {"extra_ports": 1000}, 400, "extra_ports"),
    ("alice", {"extra_ports": "x"}, 400, "extra_ports"),
    ("alice", {"gpu": "yes"}, 400, "gpu"),
    ("alice", {"gpu": True}, 400, "gpu"),
    ("alice", {"image": "no-such-image"}, 400, "image"),
    ("alice", {"image": "../../etc"}, 400, "image"),
    ("alice", {"name": "a/b"}, 400, "name"),
    ("alice", {"name": "x;reboot"}, 400, "name"),
    ("alice", {"name": 5}, 400, "name"),
]


@pytest.mark.parametrize("who, body, status, field", BAD_CREATIONS)
def test_bad_creations_answer_4xx_json_and_leave_nothing(api, keypair, no_leak, who, body, status, field):
    if isinstance(body, dict) and "public_key" not in body and field != "public_key" and who is not None and who != "wrong":
        body = {"public_key": keypair[1], **body}
    headers = {"Authorization": "Bearer nope"} if who == "wrong" else auth(who) if who else {}
    raw = body if isinstance(body, str) else json.dumps(body)
    with no_leak():
        answer = api.post("/v1/instances", raw, headers={**headers, "Content-Type": "application/json"}, expect_errors=True)
    assert answer.status_int == status and answer.content_type == "application/json"
    assert answer.json["field"] == field, answer.json
    assert answer.json["error"]


def test_per_client_cap_and_taken_names_are_conflicts(api, keypair, no_leak, cleanup):
    first = api.post_json("/v1/instances", {"public_key": keypair[1], "name": "web"}, headers=auth("bob"))
    assert first.json["name"] == "bob-web"
    with no_leak():
        again = api.post_json("/v1/instances", {"public_key": keypair[1], "name": "web"}, headers=auth("bob"), expect_errors=True)
        assert again.status_int == 409
    api.post_json("/v1/instances", {"public_key": keypair[1]}, headers=auth("bob"))
    with no_leak():
        third = api.post_json("/v1/instances", {"public_key": keypair[1]}, headers=auth("bob"), expect_errors=True)
    assert third.status_int == 409 and third.json["field"] == "instances" and third.json["detail"] == {"max": 2}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_p2prc_startcontainer_and_removecontainer(api, keypair, engine, cleanup):
    query = f"/startcontainer?ports=2&GPU=false&ContainerName=debian-sshd&PublicKey={b64(keypair[1])}"
    answer = api.get(query, headers=auth("alice")).json
    assert set(answer) == {"SSHUsername", "SSHPublicKey", "ID", "TagName", "Ports", "GPU"}
    assert answer["SSHUsername"] == "root" and answer["SSHPublicKey"] == keypair[1] and answer["GPU"] == "false"
    ports = answer["Ports"]["Port"]
    assert [p["PortName"] for p in ports] == ["SSH", "extra-1", "extra-2"]
    assert set(ports[0]) == {"PortName", "InternalPort", "Type", "ExternalPort", "IsUsed", "Description"}
    assert ports[0]["InternalPort"] == 22 and ssh_run(keypair[0], ports[0]["ExternalPort"], "true").returncode == 0
    assert api.get(f"/RemoveContainer?id={answer['ID']}", headers=auth("bob"), expect_errors=True).status_int == 404
    removed = api.get(f"/RemoveContainer?id={answer['ID']}", headers=auth("alice"))
    assert removed.text == "success" and not engine.containers.list(all=True, filters={"id": answer["ID"]})


@pytest.mark.parametrize(
    "query, who, status, field",
    [
        ("ports=1", None, 401, "Authorization"),
        ("ports=x", "alice", 400, "ports"),
        ("ports=-1", "alice", 400, "ports"),
        ("ports=100", "alice", 400, "extra_ports"),
        ("GPU=maybe", "alice", 400, "GPU"),
        ("PublicKey=%%%", "alice", 400, "PublicKey"),
        ("PublicKey=bm90IGEga2V5", "alice", 400, "PublicKey"),  # the query parameter it came in
        ("BaseImage=evil/image", "alice", 400, "BaseImage"),
        ("ContainerName=nope", "alice", 400, "image"),
        ("", "alice", 400, "public_key"),
    ],
)
def test_p2prc_startcontainer_refusals(api, keypair, no_leak, query, who, status, field):
    if "PublicKey" not in query and query:
        query += f"&PublicKey={b64(keypair[1])}"
    with no_leak():
        answer = api.get(f"/startcontainer?{query}", headers=auth(who) if who else {}, expect_errors=True)
    assert answer.status_int == status and answer.json["field"] == field, answer.json


def test_speed_test_routes(api):
    assert len(api.get("/v1/speedtest/download?bytes=3000000").body) == 3000000
    assert len(api.get("/50").body) == 50 * 2**20
    up = api.post("/v1/speedtest/upload", b"x" * 500000, headers={"Content-Type": "application/octet-stream"}).json
    assert up["bytes"] == 500000 and 0 < up["seconds"] < 5  # a time the service measured, not a constant
    p2p = api.post("/upload", upload_files=[("file", "../../etc/data.bin", b"y" * 1000)])
    assert p2p.text == "'.._.._etc_data.bin' uploaded!" and p2p.content_type == "text/plain"
    for bad in ("0", "abc", str(50 * 2**20 + 1)):
        answer = api.get(f"/v1/speedtest/download?bytes={bad}", expect_errors=True)
        assert answer.status_int == 400 and answer.json["field"] == "bytes"
    big = api.post("/v1/speedtest/upload", b"z" * (2**20 + 1), expect_errors=True)
    assert big.status_int == 413 and big.json["detail"] == {"max": 2**20}
    assert api.post("/upload", {"other": "x"}, expect_errors=True).json["field"] == "file"


def test_peer_routes_validate_and_refuse_disallowed_peers(api):
    me = api.get("/v1/peers").json["ip_address"][0]
    loopback = {"Name": "x", "IPV4": "127.0.0.9", "ServerPort": "8088"}
    anonymous = api.post_json("/v1/peers", {"ip_address": [loopback]}, expect_errors=True)
    assert anonymous.status_int == 401 and anonymous.json["field"] == "Authorization"  # peer writes need a token
    refused = api.post_json("/v1/peers", {"ip_address": [loopback]}, headers=auth("alice"), expect_errors=True)
    # Loopback peers are denied by default: never even asked, and the poster is told why.
    assert refused.status_int == 400 and refused.json["field"] == "ip_address[0].IPV4", refused.json
    assert api.get("/v1/peers").json == {"ip_address": [me]}
    table = json.dumps({"ip_address": [{"Name": "y", "IPV4": "not-an-ip", "ServerPort": "8088"}]}).encode()
    bad = api.post("/IpTable", upload_files=[("json", "table.json", table)], headers=auth("bob"), expect_errors=True)
    assert bad.status_int == 400 and bad.json["field"] == "ip_address[0].IPV4"
    for body, field in (({"ip_address": "x"}, "ip_address"), ({"ip_address": [{"IPV4": "10.0.0.1"}]}, "ip_address[0].ServerPort"),
                        ({"ip_address": [{"IPV4": "10.0.0.1", "ServerPort": "99999"}]}, "ip_address[0].ServerPort"),
                        ({"ip_address": [{"IPV4": "10.0.0.1", "ServerPort": "1", "Latency": -1}]}, "ip_address[0].Latency")):
        assert api.post_json("/v1/peers", body, headers=auth("alice"), expect_errors=True).json["field"] == field
    huge = {"ip_address": [dict(loopback, Name=str(i)) for i in range(300)]}
    assert api.post_json("/v1/peers", huge, headers=auth("alice"), expect_errors=True).json["field"] == "ip_address"


def test_unknown_routes_and_methods_are_json(api):
    missing = api.get("/nope", expect_errors=True)
    assert missing.status_int == 404 and missing.content_type == "application/json" and missing.json["error"]
    wrong = api.put("/v1/instances", expect_errors=True)
    assert wrong.status_int == 405 and wrong.content_type == "application/json"


def test_the_providers_limits_are_the_one_source_and_a_clients_only_narrow_them(tmp_path, keypair, cleanup):
    """provider.json's limits hold the API's clients; a trusted network's client limits may narrow
    them, and the service refuses to start with limits that would widen them."""
    wider = make_config(tmp_path, p2prc_networks=[{"network": "127.0.0.0/8", "client": "lab",
                                                   "limits": {"max_memory": "1g"}}])
    with pytest.raises(InvalidInput) as refused_start:
        make_app(config_from_dict(wider))
    assert refused_start.value.field == "p2prc_networks[0].limits.max_memory", refused_start.value.message
    assert "only narrow" in refused_start.value.message
    api = TestApp(make_app(config_from_dict(make_config(tmp_path, limits={"max_memory": "192m"}))))
    view = api.post_json("/v1/instances", {"public_key": keypair[1], "memory_reservation": "128m"}, headers=auth("alice")).json
    assert view["limits"]["memory"] == 192 * 2**20 and view["limits"]["memory_reservation"] == 128 * 2**20
    refused = api.post_json("/v1/instances", {"public_key": keypair[1], "memory": "200m"}, headers=auth("alice"),
                            expect_errors=True)
    assert refused.status_int == 400 and refused.json["field"] == "memory" and refused.json["detail"] == {"max": 192 * 2**20}
    assert refused.json["error"] == "memory: 200m is more than this provider allows (192m)"


def test_engine_unavailable_is_503_json(tmp_path, keypair):
    api = TestApp(make_app(config_from_dict(make_config(tmp_path, docker_host="unix:///nonexistent/docker.sock"))))
    health = api.get("/healthz", expect_errors=True)
    assert health.status_int == 503 and health.json["engine"] is False
    create = api.post_json("/v1/instances", {"public_key": keypair[1]}, headers=auth("alice"), expect_errors=True)
    assert create.status_int == 503 and "not reachable" in create.json["error"]

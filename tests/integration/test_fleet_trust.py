"""The fleet only its operator can join, tried as a tenant would (issue: a tenant made herself a
member from inside her instance, received the fleet's token and pushed image archives): two real
providers (this machine's engine and a second one) that are members through certificates of
one CA, a tenant's own server on loopback, real TLS handshakes, the real CLI over pinned HTTPS.
One pair of providers serves the whole module."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from dockpool_api.fleet import tls as fleet_tls
from dockpool_api.fleet.membership import Signer
from dockpool_api.fleet.transport import Call, Endpoint, HttpTransport, Unreachable
from dockpool_api.fleet.wire import parse_entry, render_entry
from dockpool_dev import devca
from support.api_config import TOKENS, remove_client_instances
from support.cli import cli
from support.ssh import ssh_run
from support.tls_front import fingerprint_of, tls_front
from support.two_providers import FLEET_PORT, SOURCE, TARGET, two_providers
from support.waiting import until

pytestmark = pytest.mark.engine
ALICE = {"Authorization": f"Bearer {TOKENS['alice']}"}
OPS = {"Authorization": f"Bearer {TOKENS['ops']}"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    work = tmp_path_factory.mktemp("trust")
    with two_providers(work) as (source, target, engine2):
        yield source, target, engine2, (work / "fleet-ca" / "ca.crt", work / "fleet-ca" / "ca.key"), work


class Tenant(BaseHTTPRequestHandler):
    """What a tenant serves from her instance's extra port: a P2PRC-looking /server_info naming a
    membership key of her own, and a record of every request and header that reaches her."""

    seen: list = []
    key = ""

    def do_GET(self) -> None:
        self.seen.append((self.command, self.path, dict(self.headers)))
        body = json.dumps({"Hostname": "tenant", "dockpool": {"membership_key": self.key}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *_: object) -> None:
        pass


def p2prc_names(url: str) -> list[str]:
    """Who P2PRC's table shows (what a post answers, as P2PRC's /IpTable does)."""
    answer = requests.post(f"{url}/v1/peers", json={"ip_address": []}, headers=ALICE, timeout=10)
    return [e["Name"] for e in answer.json()["ip_address"]]


def members(url: str) -> dict[str, str]:
    return {m["name"]: m["tier"] for m in requests.get(f"{url}/v1/fleet", timeout=5).json()["members"]}




def test_a_client_posting_her_own_server_never_makes_a_member_nor_receives_a_credential(fleet, tmp_path):
    source, target, _, _, _ = fleet
    signer = Signer(str(tmp_path / "membership.key"))
    server = ThreadingHTTPServer(("127.0.0.4", 0), type("Her", (Tenant,), {"seen": [], "key": signer.public}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        entry = {"Name": "tenant", "IPV4": "127.0.0.4", "ServerPort": str(port)}
        signed = render_entry(signer.sign(parse_entry({**entry, **{k: v for k, v in requests.get(
            f"{SOURCE}/v1/peers", timeout=5).json()["ip_address"][0].items() if k not in entry and k != "dockpool"}}),
            int(time.time() * 1000), port))
        posted = requests.post(f"{SOURCE}/v1/peers", json={"ip_address": [signed]}, headers=ALICE, timeout=10)
        assert posted.status_code == 200, posted.text
        until(lambda: members(SOURCE).get("tenant") == "p2prc")  # shown, in P2PRC's tier: it answered /server_info
        assert "tenant" in p2prc_names(SOURCE)
        time.sleep(3)  # several exchange rounds (0.5 s) between the two providers
        assert members(SOURCE) == {"target": "member", "tenant": "p2prc"}
        assert "tenant" not in {e["Name"] for e in requests.get(f"{SOURCE}/v1/peers", timeout=5).json()["ip_address"]}
        assert "tenant" not in members(TARGET)  # never exchanged as a member
        seen = server.RequestHandlerClass.seen
        assert seen and all(path == "/server_info" and "Authorization" not in headers for _, path, headers in seen)
        # Never a move's source or target: the target refuses a grant for her, the source a move to her.
        offer = requests.post(f"{TARGET}/v1/moves", headers=ALICE, timeout=10,
                              json={"source": "tenant", "memory": "128m"})
        assert offer.status_code == 400 and offer.json()["field"] == "source", offer.text
        move = requests.post(f"{SOURCE}/v1/instances/nosuch/move", headers=ALICE, timeout=10,
                             json={"target": "tenant", "move": "x", "grant": "y"})
        assert move.status_code == 400 and move.json()["field"] == "target", move.text
        # An administrator removes the entry (with the CLI); a client cannot.
        assert requests.delete(f"{SOURCE}/v1/peers/tenant", headers=ALICE, timeout=5).status_code == 401
        home = tmp_path / "ops"
        assert cli(home, "login", SOURCE, "--token", TOKENS["ops"]).returncode == 0
        removed = cli(home, "forget", "tenant")
        assert removed.returncode == 0 and "Removed tenant" in removed.stdout, removed.stderr
        assert "tenant" not in members(SOURCE)
        again = cli(home, "forget", "tenant")
        assert again.returncode == 4, again.stderr  # not found
    finally:
        server.shutdown()
        server.server_close()


def test_the_provider_never_lists_itself(fleet):
    own = requests.get(f"{SOURCE}/v1/peers", timeout=5).json()["ip_address"][0]
    forged = [{"Name": "me-again", "IPV4": own["IPV4"], "ServerPort": own["ServerPort"]},
              {"Name": own["Name"], "IPV4": "127.0.0.9", "ServerPort": "8091"}, own]
    assert requests.post(f"{SOURCE}/v1/peers", json={"ip_address": forged}, headers=ALICE, timeout=10).status_code == 200
    time.sleep(1)
    assert set(members(SOURCE)) == {"target"}
    assert p2prc_names(SOURCE).count("source") == 1


def _handshake(address: str, context: ssl.SSLContext) -> bytes:
    with socket.create_connection((address, FLEET_PORT), timeout=5) as plain:
        with context.wrap_socket(plain) as tls:
            tls.sendall(b"GET /v1/fleet/identity HTTP/1.0\r\n\r\n")
            return tls.recv(4096)


def test_the_fleet_listener_takes_only_certificates_of_the_fleet_and_only_its_own_routes(fleet, tmp_path):
    source, _, _, ca, _ = fleet
    anonymous = ssl.create_default_context(cafile=str(ca[0]))
    anonymous.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError)):  # no client certificate: no answer at all
        _handshake("127.0.0.1", anonymous)
    stranger_ca = devca.make_ca(tmp_path / "other-ca", "another operator's CA")
    stranger = fleet_tls.FleetTLS(*map(str, devca.issue(stranger_ca, tmp_path / "stranger", "source")), str(ca[0]))
    with pytest.raises((ssl.SSLError, ConnectionError)):  # a certificate naming "source", from another CA
        _handshake("127.0.0.1", stranger.client_context())
    with socket.create_connection(("127.0.0.1", FLEET_PORT), timeout=5) as plain:  # plain HTTP: no HTTP answer
        plain.sendall(b"GET /v1/fleet/identity HTTP/1.0\r\n\r\n")
        try:
            assert not plain.recv(4096).startswith(b"HTTP/")
        except ConnectionError:
            pass
    # A member's certificate opens the fleet's routes, never a client's, whatever token comes with it.
    member = fleet_tls.FleetTLS(*map(str, devca.issue(ca, tmp_path / "member", "target-twin")), str(ca[0]))
    client, source = HttpTransport(member.client_context()), Endpoint("127.0.0.1", FLEET_PORT, "source")
    answer = client.open(source, Call("GET", "/v1/fleet/identity"))
    assert answer.status == 200 and json.loads(answer.read())["provider"] == "source"
    answer = client.open(source, Call("GET", "/v1/instances", headers=OPS))
    assert answer.status == 401 and b"only the routes between providers" in answer.read()
    # The calling side checks the name too: the provider at 127.0.0.1 is not "target".
    with pytest.raises(Unreachable, match="names 'source', not 'target'"):
        client.open(Endpoint("127.0.0.1", FLEET_PORT, "target"), Call("GET", "/v1/fleet/identity"))


def test_the_routes_between_providers_are_refused_on_the_clients_listener(fleet):
    for method, path in (("POST", "/v1/fleet/gossip"), ("GET", "/v1/fleet/identity"),
                         ("POST", "/v1/moves/0123/pull"), ("GET", "/v1/exports/0123")):
        answer = requests.request(method, f"{SOURCE}{path}", headers=ALICE, json={}, timeout=5)
        assert answer.status_code == 401 and "fleet" in answer.json()["error"], (path, answer.text)


def test_a_client_holds_a_bounded_number_of_move_grants(fleet, keypair):
    body = {"source": "source", "memory": "64m", "public_key": keypair[1]}
    granted = [requests.post(f"{TARGET}/v1/moves", headers=ALICE, json=body, timeout=10) for _ in range(2)]
    assert [g.status_code for g in granted] == [201, 201], granted[0].text
    assert granted[0].json()["provider"] == "target"
    third = requests.post(f"{TARGET}/v1/moves", headers=ALICE, json=body, timeout=10)
    assert third.status_code == 429 and third.json()["field"] == "moves_per_client", third.text
    bob = requests.post(f"{TARGET}/v1/moves", headers={"Authorization": f"Bearer {TOKENS['bob']}"}, json=body, timeout=10)
    assert bob.status_code == 201  # another client's grants are his own
    for grant in granted:  # given back, they count no more
        assert requests.delete(f"{TARGET}/v1/moves/{grant.json()['id']}", headers=ALICE, timeout=10).status_code == 200
    again = requests.post(f"{TARGET}/v1/moves", headers=ALICE, json=body, timeout=10)
    assert again.status_code == 201
    assert requests.delete(f"{TARGET}/v1/moves/{again.json()['id']}", headers=ALICE, timeout=10).status_code == 200


def test_the_cli_moves_between_providers_logged_in_over_pinned_https(fleet, keypair, engine, tmp_path):
    source, target, engine2, _, work = fleet
    home = tmp_path / "client"
    fronts = []
    try:
        with tls_front(tmp_path / "front-a", 8091, api_host="127.0.0.1", cert_name="a") as front_a, \
                tls_front(tmp_path / "front-b", 8091, api_host="127.0.0.3", cert_name="b") as front_b:
            fronts = [front_a, front_b]
            for front in fronts:
                pinned = cli(home, "login", front.url, "--fingerprint", fingerprint_of(front.certificate),
                             token=TOKENS["alice"])
                assert pinned.returncode == 0, pinned.stderr
            made = cli(home, "up", "--provider", front_a.url, "--key", str(keypair[0]), "--memory", "128m",
                       "--no-check", "--json")
            assert made.returncode == 0, made.stderr
            view = json.loads(made.stdout)
            assert ssh_run(keypair[0], view["ssh"]["port"], "echo 'sent encrypted' > /root/notes.txt").returncode == 0
            moved = cli(home, "move", view["name"], "--to", front_b.url, "--no-check")
            assert moved.returncode == 0, moved.stderr
            there = json.loads((home / "dockpool" / "config.json").read_text())["instances"]
            new_name = next(n for n, v in there.items() if v["provider"] == front_b.url)
            instance = requests.get(f"{TARGET}/v1/instances/{new_name}", headers=ALICE, timeout=10).json()
            proof = ssh_run(keypair[0], instance["ssh"]["port"], "cat /root/notes.txt")
            assert proof.stdout.strip() == "sent encrypted", proof.stderr
    finally:
        remove_client_instances(engine)
        remove_client_instances(engine2)


def test_joining_another_operators_fleet_is_trusting_its_ca_on_both_sides(tmp_path):
    """Two providers of two operators' CAs: strangers while either trusts only its own CA,
    members once both trust both (provider_api_fleet_cas)."""
    from support.api_config import make_config
    from support.api_process import api_process

    cas = [devca.make_ca(tmp_path / f"ca{i}", f"operator {i}'s CA") for i in (1, 2)]
    both = tmp_path / "both.pem"
    both.write_text(cas[0][0].read_text() + cas[1][0].read_text())

    def settings(i: int, trusted: str, bootstrap: list) -> dict:
        folder = tmp_path / f"p{i}-{len(list(tmp_path.glob(f'p{i}-*')))}"
        folder.mkdir()
        address = f"127.0.0.{20 + i}"
        return {**make_config(folder), "provider_name": f"op{i}", "peer_networks": ["127.0.0.0/8"],
                "peer_deny_networks": [], "gossip_interval": 0.5, "bootstrap_peers": bootstrap,
                **devca.fleet_settings(cas[i - 1], folder / "fleet", f"op{i}", address, 8496),
                "fleet_cas": trusted}, folder, address

    one, dir1, host1 = settings(1, str(cas[0][0]), [])
    two, dir2, host2 = settings(2, str(both), ["https://127.0.0.21:8496"])
    with api_process(dir1, one, host=host1) as url1, api_process(dir2, two, host=host2) as url2:
        time.sleep(3)  # rounds go by: op1 refuses op2's certificate, so neither is the other's member
        assert members(url1) == {} and members(url2) == {}
    one, dir1, host1 = settings(1, str(both), [])  # op1's operator trusts op2's CA too
    with api_process(dir1, one, host=host1) as url1, api_process(dir2, two, host=host2) as url2:
        until(lambda: members(url1) == {"op2": "member"} and members(url2) == {"op1": "member"})

"""What an attacker with an ordinary client account tried, replayed against the real
service (its own process on loopback), the real engine and a real browser. Each test
failed before its fix. The jump-host findings need the provider's real sshd and are
in tests/e2e/test_provider.py; the watchdog's in tests/integration/test_disk_limits.py."""
from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest
import requests

from dockpool.networks import NetworkRule
from dockpool_api.fleet.wire import parse_entry
from support.api_config import TOKENS, make_config
from support.api_process import api_process
from support.browser import dom
from support.cli import cli

pytestmark = pytest.mark.engine
ALICE = {"Authorization": f"Bearer {TOKENS['alice']}"}
LOOPBACK_PEERS = {"peer_networks": ["127.0.0.0/8"], "peer_deny_networks": []}


@pytest.fixture
def service(tmp_path, engine):
    with api_process(tmp_path, make_config(tmp_path, **LOOPBACK_PEERS)) as url:
        yield url
    for c in engine.containers.list(all=True, filters={"label": "dockpool.owner"}):
        if c.labels.get("dockpool.owner") in TOKENS:
            c.remove(force=True)


class Listener:
    """A TCP listener of the test's own on loopback that counts connections and answers
    each by trickling ``trickle`` bytes one per second (or at once, when 0)."""

    def __init__(self, host: str = "127.0.0.1", trickle: int = 0, answer: bytes = b"") -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.trickle, self.answer = trickle, answer
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                conn.recv(65536)  # the request, as a server reads it before answering
                conn.sendall(self.answer)
                for _ in range(self.trickle):  # bounded: at most `trickle` seconds
                    if self.stopped.wait(1):
                        return
                    conn.sendall(b"x")
            except OSError:
                pass

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


@contextmanager
def listeners(count: int, **kwargs) -> Iterator[list[Listener]]:
    made = [Listener(**kwargs) for _ in range(count)]
    try:
        yield made
    finally:
        for each in made:
            each.close()


def peer(port: int, address: str = "127.0.0.1", name: str = "probe") -> dict:
    return {"ip_address": [{"Name": name, "IPV4": address, "ServerPort": str(port)}]}


# ---- 1. the status page's token -----------------------------------------------------------------


class Thief(BaseHTTPRequestHandler):
    """A page served from another port of the provider's host (another client's instance):
    it opens the status page with the victim's token in a frame, then shows what it can read."""

    api = ""
    token = ""

    def do_GET(self) -> None:
        page = f"""<!doctype html><html><body>
<iframe id="victim" src="{self.api}/#token={self.token}"></iframe>
<pre id="loot">waiting</pre>
<script>
setTimeout(function () {{
  var loot = {{cookie: document.cookie, storage: "unreadable", fetched: "unreadable"}};
  try {{ loot.storage = JSON.stringify(document.getElementById("victim").contentWindow.sessionStorage); }} catch (e) {{}}
  fetch("{self.api}/", {{credentials: "include"}}).then(function (r) {{ return r.text(); }})
    .then(function (t) {{ loot.fetched = t.indexOf("Your instances") >= 0 ? "own instances" : "anonymous"; }})
    .catch(function () {{}})
    .finally(function () {{ document.getElementById("loot").textContent = "LOOT" + JSON.stringify(loot) + "END"; }});
}}, 2500);
</script></body></html>"""
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_a_page_on_another_port_of_the_provider_cannot_obtain_a_clients_token(service, keypair):
    made = requests.post(f"{service}/v1/instances", json={"public_key": keypair[1]}, headers=ALICE, timeout=120)
    assert made.status_code == 201, made.text
    handler = type("ThiefHere", (Thief,), {"api": service, "token": TOKENS["alice"]})
    thief = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=thief.serve_forever, daemon=True).start()
    try:
        shown = dom(f"http://127.0.0.1:{thief.server_address[1]}/", budget_ms=10000)
    finally:
        thief.shutdown()
    loot = json.loads(shown.split("LOOT", 1)[1].split("END", 1)[0].replace("&quot;", '"'))
    assert TOKENS["alice"] not in json.dumps(loot), loot
    assert loot == {"cookie": "", "storage": "unreadable", "fetched": "unreadable"}
    # The owner's own tab still shows the instance, from the token kept in that tab only.
    assert made.json()["name"] in dom(f"{service}/#token={TOKENS['alice']}")


# ---- 4. limits bypassed with numbers sent as text -----------------------------------------------


@pytest.mark.parametrize("field, value", [("extra_ports", "16"), ("extra_ports", " 3"), ("cpus", "2"), ("cpus", "9")])
def test_limits_hold_for_numbers_sent_as_text(service, keypair, engine, field, value):
    before = len(engine.containers.list(all=True))
    answer = requests.post(f"{service}/v1/instances", json={"public_key": keypair[1], field: value}, headers=ALICE,
                           timeout=120)
    assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    assert len(engine.containers.list(all=True)) == before


def test_a_count_sent_as_text_is_parsed_once_and_given_as_asked(service, keypair):
    answer = requests.post(f"{service}/v1/instances", json={"public_key": keypair[1], "extra_ports": "2"},
                           headers=ALICE, timeout=120)
    assert answer.status_code == 201, answer.text
    assert len(answer.json()["ports"]) == 3  # sshd and the two extra ports: the client's limit
    for bad in ("2.5", "1e1", "0x2", "²"):
        refused = requests.post(f"{service}/v1/instances", json={"public_key": keypair[1], "extra_ports": bad},
                                headers=ALICE, timeout=60)
        assert refused.status_code == 400 and refused.json()["field"] == "extra_ports", bad


# ---- 6. and 7. of the isolation issue: nobody anonymous makes the provider connect anywhere -----


def test_an_anonymous_peer_post_never_makes_the_provider_connect(service):
    with listeners(1, answer=b"HTTP/1.0 200 OK\r\n\r\n{\"Hostname\": \"lan-host\"}") as (lan,):
        for path, send in (("/v1/peers", lambda: requests.post(f"{service}/v1/peers", json=peer(lan.port), timeout=30)),
                           ("/IpTable", lambda: requests.post(f"{service}/IpTable", timeout=30, files={
                               "json": ("t.json", json.dumps(peer(lan.port)))}))):
            answer = send()
            assert answer.status_code == 401, (path, answer.text)
        time.sleep(0.5)
        assert lan.accepted == 0
        # With a client's token the same post is checked (the listener is asked once) and kept.
        kept = requests.post(f"{service}/v1/peers", json=peer(lan.port), headers=ALICE, timeout=30).json()
        assert lan.accepted == 1 and "probe" in {p["Name"] for p in kept["ip_address"]}


def test_a_trickling_peer_costs_one_deadline_and_cannot_hold_the_workers(service):
    with listeners(8, trickle=60) as slow:
        started = time.monotonic()
        one = requests.post(f"{service}/v1/peers", json=peer(slow[0].port), headers=ALICE, timeout=30)
        took = time.monotonic() - started
        assert one.status_code == 200 and took < 6, took  # one deadline (3 s) for the whole exchange
        with ThreadPoolExecutor(max_workers=8) as pool:
            posts = [pool.submit(requests.post, f"{service}/v1/peers", json=peer(s.port, name=f"slow{i}"),
                                 headers=ALICE, timeout=60) for i, s in enumerate(slow)]
            time.sleep(0.5)
            asked = time.monotonic()
            served = requests.get(f"{service}/v1/instances", headers=ALICE, timeout=30)
            waited = time.monotonic() - asked
            statuses = sorted(p.result().status_code for p in posts)
    assert served.status_code == 200 and waited < 5, waited
    assert set(statuses) <= {200, 503} and 503 in statuses, statuses  # at most four checks at once
    print(f"client request served in {waited:.2f} s while 8 trickling peers were posted; statuses {statuses}")


@pytest.mark.parametrize("spelling", ["::ffff:127.0.0.1", "::FFFF:7F00:1", "0:0:0:0:0:ffff:7f00:0001",
                                      "::ffff:169.254.169.254"])
def test_ipv4_hidden_in_ipv6_is_refused_before_any_connection(service, spelling):
    answer = requests.post(f"{service}/v1/peers", headers=ALICE, timeout=30,
                           json={"ip_address": [{"Name": "me", "IPV6": spelling, "ServerPort": "8088"}]})
    assert answer.status_code == 400 and answer.json()["field"] == "ip_address[0].IPV6", answer.text
    assert NetworkRule().permits(spelling) is False  # and the rule judges it as the IPv4 address it is


def test_equivalent_spellings_are_one_address():
    spellings = ["2001:DB8::1", "2001:db8:0:0::1", "2001:0db8:0000:0000:0000:0000:0000:0001"]
    assert {parse_entry({"IPV6": s, "ServerPort": "8088"}).ipv6 for s in spellings} == {"2001:db8::1"}


# ---- 9. smaller faults ---------------------------------------------------------------------------


def test_deeply_nested_json_is_bad_input_not_a_server_error(service):
    nested = b"[" * 100000 + b"]" * 100000
    for path in ("/v1/instances", "/v1/peers"):
        answer = requests.post(f"{service}{path}", data=nested, headers={**ALICE, "Content-Type": "application/json"},
                               timeout=30)
        assert answer.status_code == 400 and "nested too deeply" in answer.json()["error"], (path, answer.text)
    table = requests.post(f"{service}/IpTable", files={"json": ("t.json", b'{"ip_address": ' + nested + b"}")},
                          headers=ALICE, timeout=30)
    assert table.status_code == 400 and table.json()["field"] == "json"


def test_a_tiny_memory_ask_is_refused_naming_the_field(service, keypair, engine):
    before = len(engine.containers.list(all=True))
    for memory in ("1b", "1k", "5m"):
        answer = requests.post(f"{service}/v1/instances", json={"public_key": keypair[1], "memory": memory},
                               headers=ALICE, timeout=60)
        assert answer.status_code == 400 and answer.json()["field"] == "memory", answer.text
    assert len(engine.containers.list(all=True)) == before


def test_invented_http_methods_add_no_metric_series(service):
    for i in range(30):
        requests.request(f"X{i}EVIL", f"{service}/v1/specs", timeout=10)
    metrics = requests.get(f"{service}/metrics", timeout=10).text
    assert "EVIL" not in metrics
    assert 'method="other"' in metrics


def test_peer_names_a_client_posts_never_reach_the_clis_provider_list(tmp_path, engine):
    """A posted peer is P2PRC's tier: shown in P2PRC's table, never a provider of the fleet
    `dockpool providers` lists (which prints what it does list as plain text, never markup)."""
    answer = b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"Hostname": "peer"}'
    with listeners(1, answer=answer) as (stand_in,):
        with api_process(tmp_path, make_config(tmp_path, **LOOPBACK_PEERS)) as url:
            name = "[link=http://evil.example/]click[/link]"
            kept = requests.post(f"{url}/v1/peers", json=peer(stand_in.port, name=name), headers=ALICE, timeout=30)
            assert name in {p["Name"] for p in kept.json()["ip_address"]}
            assert cli(tmp_path, "login", url, "--token", TOKENS["alice"]).returncode == 0
            shown = cli(tmp_path, "providers")
    assert shown.returncode == 0, shown.stderr
    flat = "".join(shown.stdout.split())
    assert "testprov" in flat and "evil.example" not in flat and "\x1b]8;" not in shown.stdout


def test_a_flood_of_wrong_tokens_from_one_address_does_not_lock_out_its_clients(service):
    for i in range(15):
        requests.get(f"{service}/v1/instances", headers={"Authorization": f"Bearer wrong-{i}"}, timeout=10)
    assert requests.get(f"{service}/v1/instances", headers={"Authorization": "Bearer wrong-x"}, timeout=10).status_code == 429
    for who in ("alice", "ops"):
        assert requests.get(f"{service}/v1/instances", headers={"Authorization": f"Bearer {TOKENS[who]}"},
                            timeout=10).status_code == 200

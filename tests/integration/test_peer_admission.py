"""What a posted P2PRC peer may make the provider connect to (issue 34, items 14 and 17), on the
real service, engine and instances: never its own bridges (another client's instance, a listener
this test starts beside it), never a port that is not an API's (its jump sshd, an instance's
published sshd), and never itself under another address."""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest
import requests

from support.api_config import TOKENS, make_config, remove_client_instances
from support.api_process import api_process, free_port

pytestmark = pytest.mark.engine
ALICE = {"Authorization": f"Bearer {TOKENS['alice']}"}
BOB = {"Authorization": f"Bearer {TOKENS['bob']}"}
# Loopback opened, as a test must (the provider and its stand-ins all live on loopback here).
LOOPBACK = {"peer_networks": ["127.0.0.0/8"], "peer_deny_networks": [], "gossip_interval": 0.5, "peer_expiry": 5.0}
LISTENER = ("import socket\ns = socket.socket()\ns.bind(('0.0.0.0', 8088))\ns.listen(16)\nprint('listening', flush=True)\n"
            "while True:\n    c, a = s.accept()\n    print('connection from', a[0], flush=True)\n    c.close()\n")


def post_peer(url: str, address: str, port: int, who: dict = BOB, name: str = "probe") -> requests.Response:
    return requests.post(f"{url}/v1/peers", json={"ip_address": [{"Name": name, "IPV4": address, "ServerPort": str(port)}]},
                         headers=who, timeout=30)


@contextmanager
def listener_beside(engine, network: str) -> Iterator[tuple[object, str]]:
    """A container of this test's own on the instances' bridge, logging every connection to its 8088."""
    box = engine.containers.run("local/debian:bookworm", ["python3", "-u", "-c", LISTENER], detach=True,
                                name=f"dockpool-test-listener-{uuid.uuid4().hex[:8]}", network=network)
    try:
        deadline = time.monotonic() + 20
        while b"listening" not in box.logs():
            assert time.monotonic() < deadline, f"the listener never started: {box.logs()[-300:]!r}"
            time.sleep(0.2)
        box.reload()
        yield box, box.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    finally:
        box.remove(force=True)


def test_a_posted_peer_on_the_providers_bridge_or_a_service_port_is_refused_and_never_contacted(tmp_path, engine, keypair):
    # The provider: every address allowed (the default), loopback opened for the test, and
    # even the instances' bridge named on purpose: its bridges are never peers, whatever is opened.
    subnet = engine.networks.get("bridge").attrs["IPAM"]["Config"][0]["Subnet"]
    settings = make_config(tmp_path, **{**LOOPBACK, "peer_networks": ["0.0.0.0/0", "::/0", "127.0.0.0/8", subnet]})
    try:
        with api_process(tmp_path, settings) as url:
            view = requests.post(f"{url}/v1/instances", json={"public_key": keypair[1]}, headers=ALICE, timeout=120)
            assert view.status_code == 201, view.text
            instance = engine.containers.get(view.json()["id"])
            network, attached = next(iter(instance.attrs["NetworkSettings"]["Networks"].items()))
            assert network == "bridge"
            with listener_beside(engine, network) as (box, beside):
                answers = {
                    "instance sshd": post_peer(url, attached["IPAddress"], 22),
                    "listener beside": post_peer(url, beside, 8088),
                    "bridge gateway": post_peer(url, attached["Gateway"], 8088),
                    "jump sshd": post_peer(url, "127.0.0.1", 22000),
                    "published sshd": post_peer(url, "127.0.0.1", view.json()["ssh"]["port"]),
                }
                time.sleep(2.0)  # four exchange rounds: a kept entry would be polled
                heard = box.logs().decode().replace("listening\n", "")
            logs = instance.logs().decode()
            table = requests.get(f"{url}/v1/peers", timeout=10).json()["ip_address"]
    finally:
        remove_client_instances(engine)
    assert heard == "", f"the provider connected to the test's listener on its bridge: {heard}"
    assert "server_info" not in logs, f"the provider spoke HTTP to another client's sshd: {logs[-500:]}"
    refused = {what: (a.status_code, a.json().get("field")) for what, a in answers.items()}
    assert refused == {"instance sshd": (400, "ip_address[0].IPV4"), "listener beside": (400, "ip_address[0].IPV4"),
                       "bridge gateway": (400, "ip_address[0].IPV4"), "jump sshd": (400, "ip_address[0].ServerPort"),
                       "published sshd": (400, "ip_address[0].ServerPort")}, refused
    assert subnet in answers["listener beside"].json()["error"]  # the refusal says which network of its own it is in
    assert [e["Name"] for e in table] == ["testprov"]


class Alias:
    """A loopback alias of the provider's own API (as its container or docker0 address would be):
    a forwarder on 127.0.0.2 to its port, counting the connections it was asked to carry."""

    def __init__(self, api_port: int) -> None:
        self.api_port, self.connections = api_port, 0
        self.server = socket.create_server(("127.0.0.2", 0))
        self.port = self.server.getsockname()[1]
        self.server.settimeout(0.2)
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.running:
            try:
                inbound, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            outbound = socket.create_connection(("127.0.0.1", self.api_port), timeout=10)
            for a, b in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.running = False
        self.server.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        source.settimeout(10)
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_the_provider_never_lists_itself_under_another_address(tmp_path):
    port = free_port()
    known, posted = Alias(port), Alias(port)
    try:
        # One alias known from before (the peer table a restarted provider reads), one posted now.
        (tmp_path / "peers.json").write_text(json.dumps(
            {"ip_address": [{"Name": "alias-known", "IPV4": "127.0.0.2", "ServerPort": str(known.port)}]}))
        with api_process(tmp_path, make_config(tmp_path, **LOOPBACK, port=port)) as url:
            answer = post_peer(url, "127.0.0.2", posted.port, who=ALICE, name="alias-posted")
            seen = []
            for _ in range(12):  # six exchange rounds, watched
                seen += [m for m in requests.get(f"{url}/v1/fleet", timeout=10).json()["members"]
                         if m["address"] == "127.0.0.2"]
                time.sleep(0.25)
            carried = (known.connections, posted.connections)
            time.sleep(2.0)  # four more rounds: a kept alias would be polled again
            later = (known.connections, posted.connections)
            table = requests.get(f"{url}/v1/peers", timeout=10).json()["ip_address"]
    finally:
        known.close()
        posted.close()
    assert answer.status_code == 200, answer.text  # a P2PRC table that holds this provider is not refused whole
    assert seen == [], f"the provider listed itself: {seen[:2]}"
    assert [e["Name"] for e in table] == ["testprov"]
    assert carried == later and later[0] <= 1 and later[1] <= 1, (carried, later)  # asked once each, then never

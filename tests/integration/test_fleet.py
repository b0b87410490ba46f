"""The fleet on this machine: real API processes on 127.0.0.2 and up (the local fleet
command), real exchanges between them, real SIGKILLs; the client's fleet commands
against them. Correctness only: speed is bench/fleet.py's."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from bench.fleet import one_size
from dockpool_api.fleet.tls import FleetTLS
from dockpool_dev import devca, localfleet
from support.api_config import make_config
from support.api_process import api_process
from support.cli import cli
from support.waiting import until

pytestmark = pytest.mark.engine
QUICK = {"gossip_interval": 0.5, "gossip_fanout": 3, "peer_expiry": 4.0}




def test_five_providers_in_a_chain_converge_expire_the_killed_and_take_back_the_restarted(tmp_path):
    row = one_size(5, QUICK["gossip_interval"], QUICK["peer_expiry"], tmp_path)
    assert row["converge_s"] is not None, "every table holds all five"
    assert row["killed"] == 1 and row["gone_s"] is not None, "the killed one left every live table"
    assert row["restarted_back_s"] is not None, "the restarted one is back in every table"
    assert 0 < row["sent_per_round_max"] <= row["sent_bound"]


@pytest.fixture
def fleet(tmp_path):
    directory = tmp_path / "fleet"
    done = subprocess.run([sys.executable, "-m", "dockpool_dev.localfleet", "start", "4", "--dir", str(directory),
                           "--interval", "0.5", "--expiry", "4"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    try:
        yield directory, json.loads((directory / "fleet.json").read_text()), done.stdout
    finally:
        localfleet.stop(directory)


def test_the_fleet_command_starts_a_chain_lists_it_and_stops_it(fleet):
    directory, listed, printed = fleet
    assert [p["url"] for p in listed["providers"]] == [f"http://127.0.0.{i}:8088" for i in range(2, 6)]
    assert listed["token"] in printed and oct((directory / "fleet.json").stat().st_mode & 0o777) == "0o600"
    for i, provider in enumerate(listed["providers"]):
        settings = json.loads(Path(provider["config"]).read_text())
        assert settings["bootstrap_peers"] == ([f"https://127.0.0.{i + 1}:8444"] if i else [])  # a chain, over mutual TLS
        assert localfleet.running(provider["pid"], provider["config"])
        mine = requests.get(f"{provider['url']}/v1/instances", headers={"Authorization": f"Bearer {listed['token']}"},
                            timeout=10)
        assert mine.status_code == 200  # one client token for the whole fleet
    urls = {p["url"] for p in listed["providers"]}
    first = listed["providers"][0]["url"]
    # Converged: all three members, each answering our exchanges (one may have been busy a moment).
    fleet_view = until(lambda: (v := requests.get(f"{first}/v1/fleet", timeout=5).json()) and len(v["members"]) == 3
                       and all(m["answers"] in (True, None) for m in v["members"]) and v)
    assert {f"http://{m['address']}:{m['port']}" for m in fleet_view["members"]} == urls - {first}
    assert all(m["signed"] and m["tier"] == "member" and m["heard_seconds_ago"] < 4 for m in fleet_view["members"])
    page = requests.get(f"{first}/", timeout=10).text  # the status page shows the fleet
    assert all(f"fleet{i}" in page for i in range(4)) and "s ago" in page
    stopped = subprocess.run([sys.executable, "-m", "dockpool_dev.localfleet", "stop", "--dir", str(directory)],
                             capture_output=True, text=True, timeout=60, check=False)
    assert stopped.returncode == 0 and "stopped 4 providers" in stopped.stdout
    assert not any(localfleet.running(p["pid"]) for p in listed["providers"])


def test_p2prc_peers_get_p2prc_s_shape_and_the_signed_record_stays_on_v1(fleet):
    _, listed, _ = fleet
    url = listed["providers"][0]["url"]
    until(lambda: len(requests.get(f"{url}/v1/peers", timeout=5).json()["ip_address"]) == 4)
    ours = requests.get(f"{url}/v1/peers", timeout=5).json()["ip_address"]
    assert all(set(e["dockpool"]) == {"key", "version", "signature", "age", "fleet_port"} for e in ours)
    info = requests.get(f"{url}/server_info", timeout=5).json()
    assert info["dockpool"]["membership_key"] == ours[0]["dockpool"]["key"]


class StandIn(BaseHTTPRequestHandler):
    """A peer that answers an exchange the way a test chooses."""

    behaviour = "garbage"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if self.behaviour == "garbage":
            self.wfile.write(b"not json{{{")
        elif self.behaviour == "huge":  # 8 MiB of table: more than max_json_bytes
            self.wfile.write(b'{"ip_address": [' + b'{"IPV4": "198.51.100.1", "ServerPort": "1"},' * 200_000)
        elif self.behaviour == "slow":
            for _ in range(30):  # a byte a second, for longer than an exchange may take
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1)

    def log_message(self, *_: object) -> None:
        pass


class Quiet(ThreadingHTTPServer):
    """A member that misbehaves: it holds a certificate of the fleet's CA (so it gets past the TLS)."""

    daemon_threads = True

    def __init__(self, address, handler, tls: FleetTLS) -> None:
        super().__init__(address, handler)
        self.socket = tls.server_context().wrap_socket(self.socket, server_side=True)

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def test_slow_garbage_and_huge_peers_and_a_dead_bootstrap_cost_bounded_time_and_leave_nothing(tmp_path):
    ca = devca.make_ca(tmp_path / "ca")
    member = FleetTLS(*map(str, devca.issue(ca, tmp_path / "standin", "standin")), str(ca[0]))
    servers = []
    for behaviour in ("garbage", "huge", "slow"):
        server = Quiet(("127.0.0.1", 0), type(f"StandIn_{behaviour}", (StandIn,), {"behaviour": behaviour}), member)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    dead = localfleet.address(200)  # nothing listens there
    bootstrap = [f"https://127.0.0.1:{s.server_address[1]}" for s in servers] + [f"https://{dead}:8444"]
    settings = make_config(tmp_path, bootstrap_peers=bootstrap, peer_networks=["127.0.0.0/8"], peer_deny_networks=[],
                           gossip_interval=0.5, peer_expiry=4.0,
                           **devca.fleet_settings(ca, tmp_path / "fleet", "testprov", "127.0.0.1", 8494))
    try:
        with api_process(tmp_path, settings) as url:
            started = time.monotonic()
            assert requests.get(f"{url}/healthz", timeout=5).status_code == 200  # serving, whatever the peers do
            time.sleep(8)
            view = requests.get(f"{url}/v1/fleet", timeout=5).json()
            assert view["members"] == [] and requests.get(f"{url}/v1/peers", timeout=5).json()["ip_address"][1:] == []
            # Rounds go on (an exchange costs at most its deadline, 1 s here) ...
            assert view["round"] >= (time.monotonic() - started) / (0.5 + 1.0) - 1
        log = (tmp_path / next(p for p in os.listdir(tmp_path) if p.endswith(".log"))).read_text()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert "exceeds" in log and "no complete answer within" in log and "Expecting value" in log
    # ... and each failing bootstrap peer is retried with backoff, not every round: 0.5, 1, 2, 4 s apart.
    refused = re.findall(rf"peer {re.escape(dead)}:8444: .*refused", log)
    assert 2 <= len(refused) <= 5, refused
    assert not (tmp_path / "peers.json").exists() or json.loads((tmp_path / "peers.json").read_text())["ip_address"] == []


def test_the_client_uses_the_fleet(tmp_path, keypair, engine):
    directory = tmp_path / "fleet"
    # fleet0 has one instance port: full after one instance. The others have room. The port is
    # below the kernel's ephemeral range (32768-60999), so no passing connection holds it.
    fleet = localfleet.start(3, directory, QUICK, overrides={0: {"port_range": "31990-31990"}})
    config_dir = tmp_path / "client"
    try:
        urls = [p["url"] for p in fleet["providers"]]
        until(lambda: all(len(requests.get(f"{u}/v1/peers", timeout=5).json()["ip_address"]) == 3 for u in urls))
        env_token = fleet["token"]
        # Logged in to one provider: `providers` lists the whole fleet it knows, probed from here.
        assert cli(config_dir, "login", urls[0], "--token", env_token).returncode == 0
        shown = cli(config_dir, "providers", "--json")
        assert shown.returncode == 0, shown.stderr
        rows = json.loads(shown.stdout)
        assert {r["url"] for r in rows} == set(urls) and {r["name"] for r in rows} == {"fleet0", "fleet1", "fleet2"}
        assert all(r["reachable"] and r["latency_ms"] > 0 and r["memory_available"] > 0 for r in rows)
        # Fill fleet0, then log in to the two others with the same token.
        first = cli(config_dir, "up", "--provider", urls[0], "--key", str(keypair[0]), "--no-check", "--json")
        assert first.returncode == 0, first.stderr
        for url in urls[1:]:
            assert cli(config_dir, "login", url, "--token", env_token).returncode == 0
        # The best provider is full: its 409 moves the request to the next nearest.
        from dockpool_cli.instances import create_on_first
        from dockpool_cli.settings import Settings

        class Status:
            def update(self, _text: str) -> None:
                pass

        settings = Settings.load(config_dir / "dockpool")
        body = {"public_key": keypair[1]}
        chosen, view = create_on_first(settings, [urls[0], urls[2]], body, Status())
        assert chosen == urls[2] and view["name"].startswith("dev-fleet2-")
        # `up --best` lands where there is room, whichever fleet0's latency was.
        best = cli(config_dir, "up", "--best", "--key", str(keypair[0]), "--no-check", "--json")
        assert best.returncode == 0, best.stderr
        assert json.loads(best.stdout)["name"].split("-")[1] in ("fleet1", "fleet2")
        # `ls` lists the client's instances on every provider logged in to, each once.
        listed = cli(config_dir, "ls", "--json")
        assert listed.returncode == 0, listed.stderr
        names = sorted(v["name"] for v in json.loads(listed.stdout))
        assert len(names) == 3 and len(set(names)) == 3 and names[0].startswith("dev-fleet0-")
    finally:
        localfleet.stop(directory)
        for c in engine.containers.list(all=True, filters={"label": "dockpool.owner=dev"}):
            c.remove(force=True)

"""Security: no shell on client paths, hardened instances, hashed tokens and slowed
guessing, peer checks that cannot probe arbitrary hosts, names that cannot traverse."""
from __future__ import annotations

import ast
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from webtest import TestApp

from dockpool.networks import NetworkRule
from dockpool_api.app import make_app
from dockpool_api.config import config_from_dict
from dockpool_api.fleet.members import Member
from dockpool_api.fleet.wire import parse_entry, verify_peer
from support.api_config import TOKENS, make_config
from support.paths import ROOT

pytestmark = pytest.mark.engine
SOURCES = [p for d in ("plugins/module_utils", "client", "provider", "library", "bench", "scripts") for p in (ROOT / d).rglob("*.py")]


def shell_uses(path: Path) -> list[str]:
    """Calls that hand a string to a shell: shell=True, os.system/popen, ['sh', '-c', ...]."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
            found.append(f"{path.name}:{node.lineno} {name}")
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                found.append(f"{path.name}:{node.lineno} shell=")
        for arg in node.args[:1]:
            if isinstance(arg, (ast.List, ast.Tuple)) and len(arg.elts) > 1:
                first = [e.value for e in arg.elts[:2] if isinstance(e, ast.Constant)]
                if first and first[0] in ("sh", "bash", "/bin/sh", "/bin/bash") and "-c" in first:
                    found.append(f"{path.name}:{node.lineno} {first[0]} -c")
    return found


def test_no_shell_string_on_any_python_path():
    assert len(SOURCES) > 30
    assert [use for path in SOURCES for use in shell_uses(path)] == []


def test_the_scanner_itself_finds_shells(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os, subprocess\nos.system('x')\nsubprocess.run('x', shell=True)\nsubprocess.run(['sh', '-c', 'x'])\n")
    assert len(shell_uses(probe)) == 3


def test_instances_made_through_the_api_are_hardened(tmp_path, engine, keypair):
    api = TestApp(make_app(config_from_dict(make_config(tmp_path))))
    view = api.post_json("/v1/instances", {"public_key": keypair[1]}, headers={"Authorization": f"Bearer {TOKENS['alice']}"}).json
    try:
        attrs = engine.api.inspect_container(view["id"])
        host = attrs["HostConfig"]
        assert host["Privileged"] is False
        assert host["SecurityOpt"] == ["no-new-privileges:true"]
        assert host["CapDrop"] == ["ALL"]
        assert set(host["CapAdd"]) <= {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "KILL", "NET_BIND_SERVICE",
                                       "SYS_CHROOT", "AUDIT_WRITE"}
        assert host["PidsLimit"] == 512 and host["Memory"] > 0 and host["MemorySwap"] == host["Memory"]
        assert not host.get("Binds") and attrs["Mounts"] == [] and not host.get("Devices")
        assert "docker.sock" not in json.dumps(attrs)
        assert host["NetworkMode"] == "default" and host["PidMode"] == "" and host["IpcMode"] in ("private", "shareable")
    finally:
        engine.api.remove_container(view["id"], force=True)


def test_tokens_are_kept_hashed_and_guessing_is_slowed_without_locking_out_right_tokens(tmp_path):
    config = config_from_dict(make_config(tmp_path))
    assert TOKENS["alice"] not in json.dumps([c.__dict__ for c in config.clients])
    api = TestApp(make_app(config))
    attacker, other = {"REMOTE_ADDR": "192.0.2.66"}, {"REMOTE_ADDR": "192.0.2.7"}
    statuses = [api.get("/v1/instances", headers={"Authorization": f"Bearer guess-{i}"}, extra_environ=attacker,
                        expect_errors=True).status_int for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    assert int(api.get("/v1/instances", headers={"Authorization": "Bearer guess-13"}, extra_environ=attacker,
                       expect_errors=True).headers["Retry-After"]) > 0
    # A right token from the same address (a NAT, a proxy, the guesser's neighbours) is still served.
    assert api.get("/v1/instances", headers={"Authorization": f"Bearer {TOKENS['alice']}"}, extra_environ=attacker).status_int == 200
    assert api.get("/v1/instances", headers={"Authorization": f"Bearer {TOKENS['ops']}"}, extra_environ=attacker).status_int == 200
    spoofed = api.get("/v1/instances", headers={"Authorization": "Bearer x", "X-Forwarded-For": "198.51.100.1"},
                      extra_environ=attacker, expect_errors=True)
    assert spoofed.status_int == 429  # a forged X-Forwarded-For does not reset the count
    assert api.get("/v1/instances", headers={"Authorization": f"Bearer {TOKENS['bob']}"}, extra_environ=other).status_int == 200


class Recorder(BaseHTTPRequestHandler):
    """A stand-in peer on loopback whose behaviour a test chooses; it records every request."""

    hits: list = []
    behaviour = "ok"

    def do_GET(self) -> None:
        Recorder.hits.append((self.server.server_address, self.path))
        if self.behaviour == "redirect":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.target_port}/server_info")
            self.end_headers()
        elif self.behaviour == "slow":
            time.sleep(5)
            self.send_response(200)
            self.end_headers()
        elif self.behaviour == "huge":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"Hostname": "' + b"x" * (10 * 2**20) + b'"}')
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"Hostname": "peer"}')

    def log_message(self, *_: object) -> None:
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client giving up on a slow answer is what the test wants


@pytest.fixture
def peer_server():
    servers = []

    def serve(behaviour: str, target_port: int = 0) -> int:
        handler = type(f"Recorder_{behaviour}", (Recorder,), {"behaviour": behaviour})
        server = QuietServer(("127.0.0.1", 0), handler)
        server.target_port = target_port
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    Recorder.hits = []
    yield serve
    for server in servers:
        server.shutdown()


LOOPBACK = NetworkRule(allow=("127.0.0.0/8",), deny=())


def entry(port: int, address: str = "127.0.0.1") -> Member:
    return parse_entry({"IPV4": address, "IPV6": "", "ServerPort": str(port)})


def test_peer_checks_ask_only_the_declared_server_info(peer_server):
    port = peer_server("ok")
    assert verify_peer(entry(port), LOOPBACK) is True
    assert [path for _, path in Recorder.hits] == ["/server_info"]


def test_peer_checks_do_not_follow_redirects(peer_server):
    target = peer_server("ok")
    redirecting = peer_server("redirect", target_port=target)
    assert verify_peer(entry(redirecting), LOOPBACK) is False
    assert [addr[1] for addr, _ in Recorder.hits] == [redirecting]  # the redirect target was never asked


def test_peer_checks_give_up_on_slow_and_huge_answers(peer_server):
    slow, huge = peer_server("slow"), peer_server("huge")
    started = time.monotonic()
    assert verify_peer(entry(slow), LOOPBACK, deadline=1.0) is False
    assert time.monotonic() - started < 4
    assert verify_peer(entry(huge), LOOPBACK) is False


def test_peers_outside_the_allowed_networks_are_never_contacted(peer_server):
    port = peer_server("ok")
    assert verify_peer(entry(port), NetworkRule()) is False  # loopback is denied by default
    assert verify_peer(entry(port), NetworkRule(allow=("10.0.0.0/8",), deny=())) is False
    assert Recorder.hits == []


@pytest.mark.parametrize(
    "path, status",
    [
        ("/v1/instances/..%2F..%2Fetc%2Fpasswd", 404),
        ("/v1/instances/../../etc/passwd", 404),
        ("/v1/instances/%24(reboot)", 400),
        ("/v1/instances/a%3Brm%20-rf", 400),
        ("/v1/instances/%00", 400),
        ("/RemoveContainer?id=..%2Fdocker.sock", 400),
        ("/RemoveContainer?id=%60id%60", 400),
    ],
)
def test_names_and_ids_cannot_traverse_or_inject(tmp_path, path, status):
    api = TestApp(make_app(config_from_dict(make_config(tmp_path))))
    method = api.delete if path.startswith("/v1") else api.get
    answer = method(path, headers={"Authorization": f"Bearer {TOKENS['alice']}"}, expect_errors=True)
    assert answer.status_int == status and answer.content_type == "application/json"

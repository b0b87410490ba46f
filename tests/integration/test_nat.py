"""A provider behind real NAT, reached through a relay (issue 33; docs/nat.md).

The lab (tests/support/nat.py) is four network namespaces: the provider behind a MASQUERADE
router that lets nothing in, a public namespace holding the relay, and a client. The relay's
sshd runs with the relay role's own sshd_config and authorized_keys; the provider's tunnel is
the tunnel role's own unit command (autossh). Behind the NAT: an HTTPS service whose
certificate the client pins, and an sshd. No Docker: nothing here needs the engine lock."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from support import nat
from support.ansible_run import run_playbook_file
from support.paths import ROOT
from support.tls_front import fingerprint_of, self_signed
from support.waiting import until

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("autossh") or not os.path.exists("/usr/sbin/sshd"),
                                reason="needs root (network namespaces), autossh and openssh-server (scripts/setup.sh)")

BASE = 41000  # the NATed provider's block on the relay: api, ssh, fleet at +0, +1, +2
RELAY_PORT = 2222
SECRET = "dockpool-nat-" + secrets.token_hex(12)

HTTPS_SERVER = """
import http.server, socketserver, ssl, sys
cert, key, secret = sys.argv[1], sys.argv[2], sys.argv[3]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{secret} seen-from={self.client_address[0]}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
server = Server(("0.0.0.0", 8443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""

PINNED_GET = """
import sys, requests
from dockpool_cli.tls import PinnedAdapter
session = requests.Session(); session.mount("https://", PinnedAdapter(sys.argv[2]))
try:
    print(session.get(sys.argv[1], timeout=10).text)
except requests.exceptions.SSLError as exc:
    print("refused:", exc); sys.exit(3)
"""


@dataclass
class Relayed:
    lab: nat.Lab
    relay: nat.Relay
    relay2: nat.Relay
    directory: Path
    tunnel_key: Path
    tunnel: subprocess.Popen
    fingerprint: str
    client_key: Path

    def through_relay(self, offset: int) -> tuple[str, int]:
        return self.lab.relay_client_address, BASE + offset


def _provider_sshd(lab: nat.Lab, directory: Path, client_public: str) -> None:
    """A minimal sshd on 22000 behind the NAT (the provider's jump sshd stands in here)."""
    key = directory / "ssh_host_ed25519_key"
    nat.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    keys = directory / "authorized_keys"
    keys.write_text(client_public + "\n")
    config = directory / "sshd_config"
    config.write_text(f"Port 22000\nHostKey {key}\nPidFile {directory}/sshd.pid\nAuthorizedKeysFile {keys}\n"
                      "PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                      "UsePAM no\nStrictModes yes\n")
    lab.start(lab.nat, ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], directory / "sshd.log")
    until(lambda: lab.connects(lab.nat, "127.0.0.1", 22000, 1), 20, "the NATed sshd listening")


@pytest.fixture(scope="module")
def relayed() -> Iterator[Relayed]:
    # The account outlives the lab's processes (userdel refuses an account that still runs one).
    with nat.locked_account("dpnat-relay") as user, nat.root_only_directory() as directory, nat.nat_lab() as lab:
        tunnel_dir = directory / "tunnel"
        tunnel_dir.mkdir()
        nat.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dockpool-tunnel", "-f", str(tunnel_dir / "id_ed25519")])
        tunnels = [{"name": "nat-box", "public_key": nat.public_key(tunnel_dir / "id_ed25519"), "ports": [BASE, BASE + 1, BASE + 2]}]
        relay = nat.start_relay(lab, nat.render_relay(directory / "relay", user, RELAY_PORT, tunnels))
        relay2 = nat.start_relay(lab, nat.render_relay(directory / "relay2", user, RELAY_PORT, tunnels), second=True)

        cert, key = self_signed(directory, "provider")
        script = directory / "https_server.py"
        script.write_text(HTTPS_SERVER)
        lab.start(lab.nat, [sys.executable, str(script), str(cert), str(key), SECRET], directory / "https.log")
        until(lambda: lab.connects(lab.nat, "127.0.0.1", 8443, 1), 20, "the NATed HTTPS service listening")
        client_key, client_public = directory / "client_ed25519", ""
        nat.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client_key)])
        client_public = Path(f"{client_key}.pub").read_text().strip()
        sshd_dir = directory / "provider-sshd"
        sshd_dir.mkdir()
        _provider_sshd(lab, sshd_dir, client_public)

        # One tunnel per relay, both at once (the role runs one unit per relay).
        argv, env, tunnel_key = nat.tunnel_command(tunnel_dir, relay, BASE, lab.nat_address)
        tunnel = lab.start(lab.nat, argv, directory / "tunnel.log", env)
        argv2, env2, _ = nat.tunnel_command(tunnel_dir, relay2, BASE, lab.nat_address, relay_name="relay2")
        lab.start(lab.nat, argv2, directory / "tunnel2.log", env2)
        for address, log in ((lab.relay_client_address, "tunnel.log"), (lab.relay2_client_address, "tunnel2.log")):
            until(lambda address=address: lab.connects(lab.client, address, BASE, 1), 30,
                  f"the tunnel's API port on the relay: {(directory / log).read_text()[-1000:]}")
        yield Relayed(lab, relay, relay2, directory, tunnel_key, tunnel, fingerprint_of(cert), client_key)


def _ssh(relayed: Relayed, ns: str, key: Path, port: int, user: str, host: str, *options: str,
         command: str = "", timeout: float = 30) -> subprocess.CompletedProcess:
    argv = ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
            "-p", str(port), *options, f"{user}@{host}", *([command] if command else [])]
    return relayed.lab.run(ns, argv, timeout=timeout, check=False)


def test_the_nated_provider_dials_out_and_nothing_reaches_it_directly(relayed):
    lab = relayed.lab
    # The public side routes to the private network; the router still lets nothing in.
    for ns in (lab.public, lab.public2, lab.client):
        for port in (8443, 22000):
            assert not lab.connects(ns, lab.nat_address, port), f"{ns} reached the NATed {port} directly"
    # What the router lets through: the NATed side's own connections out (the tunnel's is one).
    assert lab.connects(lab.nat, lab.relay_address, RELAY_PORT)
    # The relay sees the router's address, not the provider's: masqueraded.
    assert f"from {lab.router_outside} port" in relayed.relay.log.read_text()
    assert f"from {lab.nat_address}" not in relayed.relay.log.read_text()


def test_https_behind_nat_is_reached_through_the_relay_pinned_by_fingerprint(relayed):
    lab = relayed.lab
    host, port = relayed.through_relay(0)
    url = f"https://{host}:{port}/"
    answer = lab.run(lab.client, [sys.executable, "-c", PINNED_GET, url, relayed.fingerprint], check=False)
    assert answer.returncode == 0, answer.stderr[-1000:]
    body = answer.stdout.strip()
    assert body.startswith(SECRET)
    # The provider sees the tunnel deliver from its own network address, never from loopback:
    # a relayed caller is never "this machine" to the provider's services.
    assert body.endswith(f"seen-from={lab.nat_address}")
    wrong = lab.run(lab.client, [sys.executable, "-c", PINNED_GET, url, "00" * 32], check=False)
    assert wrong.returncode == 3 and "refused" in wrong.stdout, wrong.stdout + wrong.stderr


def test_sshd_behind_nat_is_reached_through_the_relay_by_real_ssh(relayed):
    lab = relayed.lab
    host, port = relayed.through_relay(1)
    done = _ssh(relayed, lab.client, relayed.client_key, port, "root", host, command="ip -o -4 addr show dev nat0")
    assert done.returncode == 0, done.stderr
    assert f"inet {lab.nat_address}/" in done.stdout  # the shell ran behind the NAT


def test_a_second_provider_cannot_listen_on_the_first_ones_ports(relayed):
    lab = relayed.lab
    second = relayed.directory / "second"
    second.mkdir(exist_ok=True)
    key = second / "id_ed25519"
    if not key.exists():
        nat.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    tunnels = [{"name": "nat-box", "public_key": nat.public_key(relayed.tunnel_key), "ports": [BASE, BASE + 1, BASE + 2]},
               {"name": "other-box", "public_key": nat.public_key(key), "ports": [BASE + 10, BASE + 11, BASE + 12]}]
    nat.render_relay(relayed.relay.config.parent, relayed.relay.user, RELAY_PORT, tunnels)
    relayed.relay.process.send_signal(1)  # SIGHUP: sshd re-reads its config (PermitListen), as the role's reload does
    until(lambda: lab.connects(lab.nat, lab.relay_address, RELAY_PORT, 1), 20, "the relay back after its reload")

    def listen(port: int) -> subprocess.CompletedProcess:
        # -f with ExitOnForwardFailure: returns once the forward is set up, or fails when refused.
        return _ssh(relayed, lab.nat, key, RELAY_PORT, relayed.relay.user, lab.relay_address,
                    "-N", "-f", "-o", "ExitOnForwardFailure=yes", "-R", f"*:{port}:{lab.nat_address}:8443")

    refused = [listen(BASE + offset) for offset in range(3)]
    assert all(r.returncode != 0 and "forwarding failed" in r.stderr for r in refused), [r.stderr for r in refused]
    # And not only because the first provider holds them: a port of its block it is not using
    # right now (it reconnects, say), and a port in no block at all, are refused too.
    for port in (BASE + 3, BASE + 20):
        r = listen(port)
        assert r.returncode != 0 and "forwarding failed" in r.stderr, (port, r.stderr)
    # Its own block it gets (the refusals above are the relay's rules, not a broken key).
    own = listen(BASE + 10)
    try:
        assert own.returncode == 0, own.stderr
        until(lambda: lab.connects(lab.client, lab.relay_client_address, BASE + 10, 1), 10, "the second's own port")
    finally:
        for pid in _pids_running(["ssh", "-F", "/dev/null", "-i", str(key)]):
            os.kill(pid, 15)


def _pids_running(prefix: list[str]) -> list[int]:
    """This test's own ssh -f processes (they detach), found by their exact argv."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if [a.decode(errors="replace") for a in argv[:len(prefix)]] == prefix:
                found.append(int(entry.name))
    return found


def test_the_relay_account_has_no_shell_and_no_other_forwarding(relayed):
    lab, relay, key = relayed.lab, relayed.relay, relayed.tunnel_key
    shell = _ssh(relayed, lab.nat, key, RELAY_PORT, relay.user, lab.relay_address, command="id; echo RAN-ON-RELAY")
    assert "RAN-ON-RELAY" not in shell.stdout and "uid=" not in shell.stdout and shell.returncode != 0
    tty = _ssh(relayed, lab.nat, key, RELAY_PORT, relay.user, lab.relay_address, "-tt", command="echo RAN-ON-RELAY")
    assert "RAN-ON-RELAY" not in tty.stdout and tty.returncode != 0
    # -W (what -L and -D open per connection): to the relay's own sshd, whose banner would come back.
    stdio = _ssh(relayed, lab.nat, key, RELAY_PORT, relay.user, lab.relay_address, "-W", f"127.0.0.1:{RELAY_PORT}")
    assert "SSH-2.0" not in stdio.stdout and stdio.returncode != 0, stdio.stdout + stdio.stderr
    # -L and -D through a listener on the NATed side: the relay closes every channel they ask for.
    for forward in (["-L", f"127.0.0.1:{BASE + 50}:127.0.0.1:{RELAY_PORT}"], ["-D", f"127.0.0.1:{BASE + 51}"]):
        done = _ssh(relayed, lab.nat, key, RELAY_PORT, relay.user, lab.relay_address,
                    "-N", "-f", "-o", "ExitOnForwardFailure=yes", *forward)
        try:
            local = BASE + 50 if forward[0] == "-L" else BASE + 51
            if done.returncode == 0:  # the listener is local; the refusal comes per channel
                got = lab.run(lab.nat, [sys.executable, "-c", _THROUGH_LOCAL, str(local), forward[0],
                                        str(RELAY_PORT)], check=False)
                assert "SSH-2.0" not in got.stdout and got.returncode != 0, got.stdout
        finally:
            for pid in _pids_running(["ssh", "-F", "/dev/null", "-i", str(key)]):
                os.kill(pid, 15)


# Connects to the local forward (-L), or asks it as SOCKS5 for the relay's sshd (-D), and prints what comes back.
_THROUGH_LOCAL = """
import socket, struct, sys
port, kind, target = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=5)
if kind == "-D":
    s.sendall(b"\\x05\\x01\\x00"); s.recv(2)
    s.sendall(b"\\x05\\x01\\x00\\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", target))
    reply = s.recv(10)
    if not reply or reply[1] != 0:
        print("socks refused", reply); sys.exit(1)
try:
    data = s.recv(64)
except OSError as exc:
    data = b""
print(data.decode(errors="replace"))
sys.exit(0 if data else 1)
"""


def test_the_tunnel_comes_back_when_the_relay_cuts_its_session(relayed):
    lab, relay = relayed.lab, relayed.relay
    started = time.monotonic()
    before = nat.cut_sessions(relay)
    assert before, "the tunnel had a session on the relay"
    until(lambda: not lab.connects(lab.client, lab.relay_client_address, BASE, 1) or set(nat.session_pids(relay)) - set(before),
          10, "the cut session's listener gone")
    until(lambda: set(nat.session_pids(relay)) - set(before) and lab.connects(lab.client, lab.relay_client_address, BASE, 1),
          30, f"the tunnel back: {(relayed.directory / 'tunnel.log').read_text()[-600:]}")
    back = time.monotonic() - started
    answer = lab.run(lab.client, [sys.executable, "-c", PINNED_GET, f"https://{lab.relay_client_address}:{BASE}/",
                                  relayed.fingerprint], check=False)
    assert answer.stdout.startswith(SECRET), answer.stderr
    assert relayed.tunnel.poll() is None  # autossh itself lived on: it dialled again
    print(f"tunnel back through the relay {back:.2f} s after its session was killed")


@pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump (Debian package) not installed")
def test_the_relay_sees_no_plain_text(relayed):
    lab = relayed.lab
    capture = relayed.directory / "relay.pcap"
    dump = lab.start(lab.public, ["tcpdump", "-i", "any", "-U", "-s", "0", "-w", str(capture), "tcp"],
                     relayed.directory / "tcpdump.log")
    until(lambda: capture.exists() and capture.stat().st_size > 0, 10, "tcpdump writing")
    time.sleep(0.5)
    control = "PLAIN-CONTROL-" + secrets.token_hex(8)
    # The control: the same path sees bytes sent in clear (to the relay's sshd, which drops them).
    lab.run(lab.client, [sys.executable, "-c",
                         f"import socket;s=socket.create_connection(({lab.relay_client_address!r},{RELAY_PORT}),5);"
                         f"s.sendall({control!r}.encode()+b'\\r\\n');s.recv(100)"], check=False)
    host, port = relayed.through_relay(0)
    answer = lab.run(lab.client, [sys.executable, "-c", PINNED_GET, f"https://{host}:{port}/", relayed.fingerprint])
    assert answer.stdout.startswith(SECRET)
    shell = _ssh(relayed, lab.client, relayed.client_key, port + 1, "root", host, command=f"echo {SECRET}")
    assert SECRET in shell.stdout
    time.sleep(0.5)
    lab.stop(dump)
    data = capture.read_bytes()
    assert control.encode() in data, "tcpdump saw the relay's traffic"
    assert SECRET.encode() not in data  # through the relay: TLS and SSH, end to end


def test_a_dead_relay_costs_nothing_the_other_carries_and_the_tunnel_returns_with_it(relayed):
    """Relay 1 dies (its sshd and every session): the next login goes through relay 2 at once;
    when relay 1 is back, autossh has dialled it again. Last in this file: it stops relay 1."""
    lab, relay = relayed.lab, relayed.relay
    nat.kill_relay(lab, relay)
    died = time.monotonic()
    assert not lab.connects(lab.client, lab.relay_client_address, BASE + 1, 2)
    done = _ssh(relayed, lab.client, relayed.client_key, BASE + 1, "root", lab.relay2_client_address,
                command="ip -o -4 addr show dev nat0")
    failover = time.monotonic() - died
    assert done.returncode == 0 and f"inet {lab.nat_address}/" in done.stdout, done.stderr
    nat.start_relay(lab, relay)
    until(lambda: lab.connects(lab.client, lab.relay_client_address, BASE + 1, 1), 45,
          f"the tunnel back on relay 1: {(relayed.directory / 'tunnel.log').read_text()[-600:]}")
    back = time.monotonic() - died
    print(f"relay 1 dead: a login through relay 2 {failover:.2f} s later; the tunnel back on relay 1 {back:.1f} s after it died")


def test_the_tunnel_unit_forwards_the_three_ports_and_never_plain_http():
    """The tunnel role's unit as rendered with its defaults (no namespaces needed)."""
    with nat.root_only_directory() as directory:
        relay = nat.Relay("198.51.100.1", 2222, "dockpool-relay", directory / "c", directory / "k", "ssh-ed25519 AAAA",
                          directory / "l")
        argv, env, _ = nat.tunnel_command(directory, relay, BASE, "192.0.2.5")
    forwards = [argv[i + 1] for i, a in enumerate(argv) if a == "-R"]
    assert forwards == [f"*:{BASE}:192.0.2.5:8443", f"*:{BASE + 1}:192.0.2.5:22000", f"*:{BASE + 2}:192.0.2.5:8444"]
    assert not any(f.endswith(":8088") for f in forwards)
    assert "ExitOnForwardFailure=yes" in argv and "StrictHostKeyChecking=yes" in argv and argv[:3] == ["/usr/bin/autossh", "-M", "0"]
    assert env["AUTOSSH_GATETIME"] == "0"


def test_provision_gives_each_relay_its_providers_tunnels_and_refuses_blocks_that_overlap(tmp_path):
    """provision.yml's NAT plays (check mode, on this machine as three local hosts, only the
    tunnel key and the relay's checks): the relay's list comes from the providers that name it,
    and two providers whose blocks share ports, or a block on the relay's own services, stop the
    play with a message naming them."""
    inventory = tmp_path / "inventory.yml"
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}

    def provision(second_base: int, first_base: int = BASE) -> tuple[int, str]:
        inventory.write_text(yaml.safe_dump({"all": {"children": {
            "providers": {"hosts": {"nat-a": {"tunnel_relays": ["relay1"], "tunnel_port_base": first_base},
                                    "nat-b": {"tunnel_relays": ["relay1"], "tunnel_port_base": second_base},
                                    "public-c": {}}, "vars": local},
            "relays": {"hosts": {"relay1": local}}}}}))
        result = run_playbook_file(ROOT / "provision.yml", check=True, inventory=str(inventory), host="relay1",
                                   tags=["role::tunnel:key", "role::relay:check"])
        failed = [item.get("msg", "") for task in result.tasks for item in task.get("results", []) if item.get("failed")]
        checked = [item.get("item", {}).get("name") for task in result.tasks for item in task.get("results", [])
                   if "relay__block" not in str(item) and item.get("item", {}).get("name")]
        return result.rc, " ".join(failed) or " ".join(sorted(set(checked)))

    assert provision(BASE + 10) == (0, "nat-a nat-b")  # both reached the relay's list; public-c did not
    rc, message = provision(BASE + 5)
    assert rc != 0 and "the block of nat-a" in message and "with ['nat-b']" in message and str(BASE + 5) in message
    rc, message = provision(BASE + 10, first_base=8440)
    assert rc != 0 and "the block of nat-a" in message and "this host" in message and "8443" in message



FLEET_SERVER = """
import http.server, socketserver, ssl, sys
from dockpool_api.fleet.tls import FleetTLS
tls = FleetTLS.load(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"fleet answer from behind the NAT"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
server = Server(("0.0.0.0", 8444), Handler)
server.socket = tls.server_context().wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""

# The fleet's one transport, from the client side of the lab: a relayed member's signed entry
# (its relays in order), reach() to choose the path, ask() over mutual TLS to the member's name.
FLEET_CALL = """
import json, sys
from dockpool_api.fleet import relays
from dockpool_api.fleet.membership import Signer
from dockpool_api.fleet.tls import FleetTLS
from dockpool_api.fleet.transport import Call, HttpTransport, Unreachable, ask, reach
from dockpool_api.fleet.wire import parse_entry, render_entry
cert, key, cas, me, name, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], json.loads(sys.argv[6])
entry = parse_entry({"Name": name, "IPV4": sys.argv[7], "ServerPort": "8088"})
member = parse_entry(render_entry(Signer(None).sign(entry, 1, 8444, paths=relays.parse(paths, "relays"))))
to = reach(member)
try:
    status, body = ask(HttpTransport(FleetTLS.load(cert, key, cas, me).client_context()), to, Call("GET", "/v1/ping"))
    print(json.dumps({"via": [to.address, to.port], "status": status, "body": body.decode()}))
except Unreachable as exc:
    print(json.dumps({"via": [to.address, to.port], "error": str(exc)})); sys.exit(3)
"""


def test_the_fleets_mutual_tls_reaches_a_relayed_member_through_its_first_live_relay(relayed, tmp_path):
    """The fleet's transport (reach + ask, mutual TLS) from the client side to a member behind the
    NAT: through relay 1, or relay 2 when relay 1 does not answer; the member's certificate name
    is checked whatever the path, and a certificate of another name behind the same relay is refused."""
    from dockpool_dev.devca import issue, make_ca
    from support.paths import ROOT

    lab = relayed.lab
    ca = make_ca(relayed.directory / "fleet-ca")
    member_cert, member_key = issue(ca, relayed.directory / "nat-box", "nat-box")
    caller_cert, caller_key = issue(ca, relayed.directory / "pub-box", "pub-box")
    script = relayed.directory / "fleet_server.py"
    script.write_text(FLEET_SERVER)
    env = {"PYTHONPATH": str(ROOT / "provider")}
    server = lab.start(lab.nat, [sys.executable, str(script), str(member_cert), str(member_key), str(ca[0]), "nat-box"],
                       relayed.directory / "fleet.log", env)
    until(lambda: lab.connects(lab.nat, "127.0.0.1", 8444, 1), 20, "the NATed fleet listener")

    def call(paths: list[dict], name: str = "nat-box") -> tuple[int, dict]:
        done = lab.run(lab.client, [sys.executable, "-c", FLEET_CALL, str(caller_cert), str(caller_key), str(ca[0]),
                                    "pub-box", name, json.dumps(paths), lab.nat_address], check=False, timeout=60)
        return done.returncode, json.loads(done.stdout or "{}") if done.stdout.strip() else {"stderr": done.stderr}

    one = {"address": lab.relay_client_address, "api_port": BASE, "ssh_port": BASE + 1, "fleet_port": BASE + 2}
    two = {**one, "address": lab.relay2_client_address}
    dead = {**one, "address": lab.relay_client_address, "fleet_port": BASE + 9}  # a relay port nobody listens on
    rc, answer = call([one, two])
    assert rc == 0 and answer["via"] == [lab.relay_client_address, BASE + 2], answer
    assert answer["status"] == 200 and answer["body"] == "fleet answer from behind the NAT"
    rc, answer = call([dead, two])
    assert rc == 0 and answer["via"] == [lab.relay2_client_address, BASE + 2] and answer["status"] == 200, answer
    rc, answer = call([one, two], name="other-box")  # the relay's path, but the member is not who answers
    assert rc == 3 and "nat-box" in answer.get("error", "") and "other-box" in answer.get("error", ""), answer
    lab.stop(server)


# The real fleet listener behind the NAT (fleet/tls.py's FleetServer), told where the tunnels deliver.
FLEET_LISTENER = """
import sys, time
from bottle import Bottle
from dockpool_api.fleet import tls as fleet_tls
from dockpool_api.fleet.tls import FleetTLS
app = Bottle()
app.route("/v1/ping", "GET", lambda: "fleet listener behind the NAT")
fleet_tls.serve(app, "0.0.0.0", 8444, FleetTLS.load(*sys.argv[1:5]), frozenset(sys.argv[5:]))
while True:
    time.sleep(60)
"""

# From one source (a second address of the client's namespace): bare TCP connections to the relay's
# fleet port, held open; then, from the client's own address, a member's call through the relay.
FLOOD_THEN_CALL = """
import json, socket, sys, time
from dockpool_api.fleet import relays
from dockpool_api.fleet.membership import Signer
from dockpool_api.fleet.tls import FleetTLS
from dockpool_api.fleet.transport import Call, HttpTransport, Unreachable, ask
from dockpool_api.fleet.wire import parse_entry, render_entry
cert, key, cas, source, relay, port, count, nat_address = sys.argv[1:9]
held, reset = [], 0
for _ in range(int(count)):
    s = socket.socket()
    s.bind((source, 0))
    try:
        s.connect((relay, int(port)))
        held.append(s)
    except OSError:
        reset += 1
        s.close()
time.sleep(1.0)  # the relay has opened each held one through the tunnel to the listener by now
paths = [{"address": relay, "api_port": int(port) - 2, "ssh_port": int(port) - 1, "fleet_port": int(port)}]
entry = parse_entry({"Name": "nat-box", "IPV4": nat_address, "ServerPort": "8088"})
member = parse_entry(render_entry(Signer(None).sign(entry, 1, 8444, paths=relays.parse(paths, "relays"))))
try:
    status, body = ask(HttpTransport(FleetTLS.load(cert, key, cas, "pub-box").client_context()), member,
                       Call("GET", "/v1/ping", deadline=10))
    result = {"status": status, "body": body.decode()}
except Unreachable as exc:
    result = {"error": str(exc)}
print(json.dumps({"held": len(held), "reset": reset, **result}))
"""


def test_bare_connections_from_one_source_at_the_relay_do_not_take_a_relayed_member_off_the_fleet(relayed):
    """Every relayed caller reaches the provider from the tunnel's one address. Before the relay's
    per-source limits and the listener's larger share for the tunnel, four idle TCP connections
    to the relay's fleet port (no credential) filled that address's share of handshakes, and every
    member's call through the relay was refused. Now the relay resets one source's connections
    past relay_connections_per_source, and the member's call from another source is answered.
    The flood is larger than the tunnel's share, so both halves are needed for it to pass."""
    from dockpool_api.fleet.tls import HANDSHAKES_PER_TUNNEL
    from dockpool_dev.devca import issue, make_ca

    lab = relayed.lab
    per_source = int(nat.role_values(nat.RELAY_ROLE)["relay_connections_per_source"])
    count = HANDSHAKES_PER_TUNNEL + 4  # past the tunnel's share too: the relay's limit is what holds it
    tunnels = [{"name": "nat-box", "public_key": "unused", "ports": [BASE, BASE + 1, BASE + 2]}]
    nat.apply_relay_limits(lab, lab.public, relayed.directory, tunnels)
    flooder = f"10.{lab.net}.3.3"  # a second source on the client's side of relay 1
    lab.run(lab.client, ["ip", "addr", "add", f"{flooder}/24", "dev", "cli0"])
    ca = make_ca(relayed.directory / "flood-ca")
    member_cert, member_key = issue(ca, relayed.directory / "flood-nat-box", "nat-box")
    caller_cert, caller_key = issue(ca, relayed.directory / "flood-pub-box", "pub-box")
    script = relayed.directory / "fleet_listener.py"
    script.write_text(FLEET_LISTENER)
    env = {"PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("provider", "plugins/module_utils"))}
    server = lab.start(lab.nat, [sys.executable, str(script), str(member_cert), str(member_key), str(ca[0]), "nat-box",
                                 lab.nat_address], relayed.directory / "fleet-listener.log", env)
    try:
        until(lambda: lab.connects(lab.nat, lab.nat_address, 8444, 1), 20, "the NATed fleet listener")
        done = lab.run(lab.client, [sys.executable, "-c", FLOOD_THEN_CALL, str(caller_cert), str(caller_key), str(ca[0]),
                                    flooder, lab.relay_client_address, str(BASE + 2), str(count), lab.nat_address],
                       check=False, timeout=60)
        answer = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {"stderr": done.stderr}
        assert answer.get("held") == per_source and answer.get("reset") == count - per_source, answer
        assert answer.get("status") == 200 and answer.get("body") == "fleet listener behind the NAT", answer
    finally:
        lab.stop(server)
        lab.run(lab.client, ["ip", "addr", "del", f"{flooder}/24", "dev", "cli0"], check=False)
        nat.remove_relay_limits(lab, lab.public)

r"""Real NAT made by the test itself: network namespaces joined by veth pairs, a router that
masquerades outbound and lets nothing in, and a relay sshd configured by the relay role's own
templates; the provider's tunnel runs the tunnel role's own unit command.

    nat (10.<n>.1.2) -- router (MASQUERADE, no inbound) -- public (10.<n>.2.1) -- client (10.<n>.3.2)
                                                     \-- public2 (10.<n>.4.1) --/ (client 10.<n>.5.2)

Each public namespace holds a relay (two relays: one can die while the other carries); it
routes between the router and the client, and even knows a route to the NATed network, so
that only the router's rules keep anyone out.
Nothing here touches the machine's own network: every address, route and iptables rule lives
in a namespace the lab made, and goes with it."""
from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import jinja2
import yaml

from .paths import ROOT

RELAY_ROLE = ROOT / "roles" / "relay"
TUNNEL_ROLE = ROOT / "roles" / "tunnel"
NOLOGIN = "/usr/sbin/nologin"


def _comment(text: str) -> str:
    return "\n".join(f"# {line}" for line in str(text).splitlines())


def _env() -> jinja2.Environment:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    env.filters["comment"] = _comment
    return env


def role_values(role: Path) -> dict:
    """The role's defaults and vars, as Ansible would hand them to its templates (vars templated once)."""
    values: dict = {}
    for part in ("defaults", "vars"):
        path = role / part / "main.yml"
        if path.exists():
            values.update(yaml.safe_load(path.read_text()) or {})
    return values


def render(role: Path, template: str, values: dict) -> str:
    env = _env()
    resolved = dict(values)
    for _ in range(3):  # vars that name other vars (relay__host_key names relay_config_dir)
        for name, value in list(resolved.items()):
            if isinstance(value, str) and "{{" in value:
                try:
                    resolved[name] = env.from_string(value).render(**resolved)
                except jinja2.TemplateError:  # Ansible's own filters and facts: the caller sets these
                    pass
    # Ansible's flatten: the one role var computed with a filter plain Jinja lacks.
    resolved["relay__listen_ports"] = sorted(int(p) for t in resolved.get("relay_tunnels", []) for p in t["ports"])
    return env.from_string((role / "templates" / template).read_text()).render(**resolved)


def run(argv: list[str], timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check,
                          stdin=subprocess.DEVNULL)


def in_ns(ns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


@dataclass
class Lab:
    """The namespaces and addresses of one NAT lab."""
    prefix: str
    net: int
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def nat(self) -> str:
        return f"{self.prefix}n"

    @property
    def router(self) -> str:
        return f"{self.prefix}r"

    @property
    def public(self) -> str:
        return f"{self.prefix}p"

    @property
    def public2(self) -> str:
        return f"{self.prefix}q"

    @property
    def client(self) -> str:
        return f"{self.prefix}c"

    @property
    def relay2_address(self) -> str:
        return f"10.{self.net}.4.1"

    @property
    def relay2_client_address(self) -> str:
        return f"10.{self.net}.5.1"

    @property
    def nat_address(self) -> str:
        return f"10.{self.net}.1.2"

    @property
    def router_outside(self) -> str:
        return f"10.{self.net}.2.2"

    @property
    def relay_address(self) -> str:
        """The relay's address as the NATed provider dials it (the public side of the router)."""
        return f"10.{self.net}.2.1"

    @property
    def relay_client_address(self) -> str:
        """The relay's address as clients reach it."""
        return f"10.{self.net}.3.1"

    @property
    def client_address(self) -> str:
        return f"10.{self.net}.3.2"

    def run(self, ns: str, argv: list[str], timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
        return run(in_ns(ns, argv), timeout=timeout, check=check)

    def start(self, ns: str, argv: list[str], log: Path, env: Optional[dict] = None) -> subprocess.Popen:
        """A long-running process inside ``ns``, stopped when the lab goes."""
        process = subprocess.Popen(in_ns(ns, argv), stdout=subprocess.DEVNULL, stderr=open(log, "ab"),
                                   stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def connects(self, ns: str, address: str, port: int, timeout: float = 3) -> bool:
        """Whether a TCP connection from ``ns`` to ``address:port`` is accepted."""
        code = ("import socket,sys\n"
                f"try:\n socket.create_connection(({address!r}, {port}), timeout={timeout}).close()\n"
                "except OSError as e:\n print(e); sys.exit(1)\n")
        return self.run(ns, ["python3", "-c", code], timeout=timeout + 10, check=False).returncode == 0


def _veth(a_ns: str, a_if: str, a_addr: str, b_ns: str, b_if: str, b_addr: str) -> None:
    run(["ip", "link", "add", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if, "netns", b_ns])
    for ns, ifname, addr in ((a_ns, a_if, a_addr), (b_ns, b_if, b_addr)):
        run(in_ns(ns, ["ip", "addr", "add", addr, "dev", ifname]))
        run(in_ns(ns, ["ip", "link", "set", ifname, "up"]))


@contextmanager
def nat_lab(prefix: str = "", net: int = 0) -> Iterator[Lab]:
    """Four namespaces and a MASQUERADE router with no inbound path; all of it removed afterwards."""
    prefix = prefix or f"dpn{os.getpid() % 100000}"
    net = net or 200 + os.getpid() % 50
    lab = Lab(prefix, net)
    made: list[str] = []
    try:
        for ns in (lab.nat, lab.router, lab.public, lab.public2, lab.client):
            run(["ip", "netns", "add", ns])
            made.append(ns)
            run(in_ns(ns, ["ip", "link", "set", "lo", "up"]))
        r = lab.router
        _veth(lab.nat, "nat0", f"{lab.nat_address}/24", r, "rin0", f"10.{net}.1.1/24")
        lab.run(lab.nat, ["ip", "route", "add", "default", "via", f"10.{net}.1.1"])
        lab.run(r, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        lab.run(r, ["iptables", "-P", "FORWARD", "DROP"])
        lab.run(r, ["iptables", "-P", "INPUT", "DROP"])
        lab.run(r, ["iptables", "-A", "INPUT", "-i", "rin0", "-j", "ACCEPT"])
        lab.run(r, ["iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"])
        for side, (public, outside, relay, client_side, client) in enumerate(
                ((lab.public, 2, lab.relay_address, lab.relay_client_address, lab.client_address),
                 (lab.public2, 4, lab.relay2_address, lab.relay2_client_address, f"10.{net}.5.2"))):
            out = f"rout{side}"
            _veth(r, out, f"10.{net}.{outside}.2/24", public, "pub0", f"{relay}/24")
            _veth(public, "pub1", f"{client_side}/24", lab.client, f"cli{side}", f"{client}/24")
            # The public side even routes to the private network: only the router keeps it out.
            lab.run(public, ["ip", "route", "add", f"10.{net}.1.0/24", "via", f"10.{net}.{outside}.2"])
            lab.run(public, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            lab.run(r, ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", out, "-j", "MASQUERADE"])
            lab.run(r, ["iptables", "-A", "FORWARD", "-i", "rin0", "-o", out, "-j", "ACCEPT"])
            lab.run(r, ["iptables", "-A", "FORWARD", "-i", out, "-o", "rin0", "-m", "conntrack",
                        "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"])
        lab.run(lab.client, ["ip", "route", "add", "default", "via", lab.relay_client_address])
        yield lab
    finally:
        for process in reversed(lab.processes):
            lab.stop(process)
        for ns in reversed(made):  # its veths, routes and iptables rules go with it
            run(["ip", "netns", "del", ns], check=False)


@contextmanager
def locked_account(name: str) -> Iterator[str]:
    """A system account made the way the relay role makes its own: no shell, no home, password locked."""
    try:
        pwd.getpwnam(name)
        existed = True
    except KeyError:
        existed = False
        run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", NOLOGIN, name])
        run(["usermod", "--lock", name])
    try:
        yield name
    finally:
        if not existed:
            run(["userdel", name], check=False)


@contextmanager
def root_only_directory() -> Iterator[Path]:
    """A folder whose every parent only root may write: sshd's StrictModes refuses keys under /tmp."""
    path = Path(tempfile.mkdtemp(prefix="dockpool-nat-", dir="/run"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Relay:
    address: str
    port: int
    user: str
    config: Path
    authorized_keys: Path
    host_key_line: str
    log: Path
    process: Optional[subprocess.Popen] = None


def render_relay(directory: Path, user: str, port: int, tunnels: list[dict]) -> Relay:
    """The relay role's sshd_config and authorized_keys, rendered with its defaults and this
    lab's paths; the host key made as the role makes it. Checked by ``sshd -t`` as the role's
    template task checks it."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)  # sshd's StrictModes: the keys file's folder is root's alone
    values = {**role_values(RELAY_ROLE), "ansible_managed": "rendered by tests/support/nat.py",
              "relay_user": user, "relay_port": port, "relay_config_dir": str(directory),
              "relay_tunnels": tunnels, "inventory_hostname": "relay1"}
    values["relay__pid_file"] = str(directory / "sshd.pid")
    key = directory / "ssh_host_ed25519_key"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
    config = directory / "sshd_config"
    config.write_text(render(RELAY_ROLE, "sshd_config.j2", values))
    keys = directory / "authorized_keys"
    keys.write_text(render(RELAY_ROLE, "authorized_keys.j2", values))
    for path in (config, keys):
        os.chmod(path, 0o644)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    run(["/usr/sbin/sshd", "-t", "-f", str(config)])
    return Relay("", port, user, config, keys, " ".join((directory / "ssh_host_ed25519_key.pub").read_text().split()[:2]),
                 directory / "sshd.log")


def start_relay(lab: Lab, relay: Relay, second: bool = False) -> Relay:
    """The relay's sshd in the first public namespace (or the second's)."""
    ns = lab.public2 if second else lab.public
    relay.process = lab.start(ns, ["/usr/sbin/sshd", "-D", "-e", "-f", str(relay.config)], relay.log)
    relay.address = lab.relay2_address if second else lab.relay_address
    deadline = time.monotonic() + 20
    while not lab.connects(ns, "127.0.0.1", relay.port, 1):  # bounded
        if time.monotonic() > deadline or relay.process.poll() is not None:
            raise TimeoutError(f"the relay's sshd did not listen: {relay.log.read_text()[-2000:]}")
        time.sleep(0.1)
    return relay


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def session_pids(relay: Relay) -> list[int]:
    """The relay's sessions: its listener's per-connection sshd processes (the lab started the
    listener: `ip netns exec` execs sshd, so the lab's process is sshd itself)."""
    assert relay.process is not None
    return _children(relay.process.pid)


def cut_sessions(relay: Relay) -> list[int]:
    """Kill every session of the relay with everything it runs (its unprivileged child holds the
    listeners): as a relay that crashes or reboots loses them. Returns the sessions cut."""
    sessions = session_pids(relay)
    for pid in sessions:
        for victim in [*_children(pid), pid]:
            with suppress(ProcessLookupError):  # the monitor ends by itself once its child is gone
                os.kill(victim, signal.SIGKILL)
    return sessions


def kill_relay(lab: Lab, relay: Relay) -> None:
    """The relay dies: its listener and every session (sshd starts each session in a session of
    its own, so stopping the listener's group leaves them up: they are gathered first)."""
    assert relay.process is not None
    victims = [p for session in session_pids(relay) for p in (*_children(session), session)]
    lab.stop(relay.process)
    for pid in victims:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def tunnel_command(directory: Path, relay: Relay, port_base: int, target: str, relay_name: str = "relay1",
                   user: str = "root") -> tuple[list[str], dict, Path]:
    """The tunnel role's unit for one relay, rendered with the role's defaults: the ExecStart
    argv, its Environment, and the key it uses (made here as the role makes it)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dockpool-tunnel", "-f", str(key)])
    known = directory / "known_hosts"  # every relay's pinned key, as the role's known_hosts holds them
    line = f"[{relay.address}]:{relay.port} {relay.host_key_line}\n"
    if line not in (known.read_text() if known.exists() else ""):
        with known.open("a") as out:
            out.write(line)
    values = {**role_values(TUNNEL_ROLE), "ansible_managed": "rendered by tests/support/nat.py",
              "tunnel_port_base": port_base, "tunnel_target_address": target, "tunnel_user": user,
              "tunnel__key": str(key), "tunnel__known_hosts": str(known),
              "tunnel__relay": {"name": relay_name, "address": relay.address, "port": relay.port, "user": relay.user}}
    unit = render(TUNNEL_ROLE, "dockpool-tunnel.service.j2", values)
    (directory / f"dockpool-tunnel-{relay_name}.service").write_text(unit)
    return parse_unit(unit) + (key,)


def parse_unit(unit: str) -> tuple[list[str], dict]:
    """ExecStart (continuation lines joined) and Environment of a systemd service."""
    joined = unit.replace("\\\n", " ")
    argv: list[str] = []
    env: dict = {}
    for line in joined.splitlines():
        if line.startswith("ExecStart="):
            argv = shlex.split(line.split("=", 1)[1])
        elif line.startswith("Environment="):
            name, value = line.split("=", 1)[1].split("=", 1)
            env[name] = value
    return argv, env


def public_key(key: Path) -> str:
    return " ".join(Path(f"{key}.pub").read_text().split()[:2])


def apply_relay_limits(lab: Lab, ns: str, directory: Path, tunnels: list[dict]) -> Path:
    """The relay role's limits.sh (each source's share of each tunnel port, each block's total),
    rendered with the role's defaults and run in ``ns`` as the relay's unit runs it."""
    values = {**role_values(RELAY_ROLE), "ansible_managed": "rendered by tests/support/nat.py", "relay_tunnels": tunnels}
    script = directory / "limits.sh"
    script.write_text(render(RELAY_ROLE, "limits.sh.j2", values))
    lab.run(ns, ["sh", str(script)])
    return script


def remove_relay_limits(lab: Lab, ns: str) -> None:
    for argv in (["-D", "INPUT", "-p", "tcp", "-j", "DOCKPOOL-RELAY"], ["-F", "DOCKPOOL-RELAY"], ["-X", "DOCKPOOL-RELAY"]):
        for tables in ("iptables", "ip6tables"):
            lab.run(ns, [tables, "-w", *argv], check=False)

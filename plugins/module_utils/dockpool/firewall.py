"""The provider's firewall for instances: clients apart, and an instance outside the
provider's own networks.

Rules in the kernel's filter table, written as ``iptables-restore`` text and applied
with ``--noflush`` so nothing but dockpool's own chains is touched:

- ``DOCKER-USER -i BRIDGE -j DOCKPOOL-EGRESS`` (Docker consults DOCKER-USER first in
  FORWARD, and never flushes it). DOCKPOOL-EGRESS lets replies through; traffic to
  another instance goes to DOCKPOOL-TENANTS, which accepts only pairs of instances
  of the same client, and is refused after it; then the operator's allowed networks
  and the DNS servers (port 53) pass, the denied networks (RFC 1918, CGNAT,
  link-local with the cloud metadata services, loopback, multicast...) are refused,
  and the rest (the internet) passes.
- ``INPUT -i BRIDGE -j DOCKPOOL-INPUT``: an instance reaches the provider host itself
  (through the bridge's gateway or any of the host's addresses) only on the ports
  clients are meant to use (the API, the jump account's sshd); the rest is refused.

Refusals are REJECTs (a TCP reset, an ICMP "administratively prohibited"), so a
blocked connection fails at once instead of hanging. The egress and input chains
depend only on settings and are applied before Docker starts; the tenants chain
follows the instances (their owner label and bridge address) and is rebuilt on
every container start, stop and removal by ``dockpool-firewall watch``.

- IPv6 (``ip6tables``): ``INPUT`` and ``FORWARD -i BRIDGE -j DOCKPOOL-IPV6``, which
  refuses everything an instance starts (replies to the host's own connections
  pass). Instances get no IPv6 from Docker, and under runc the
  ``disable_ipv6`` sysctl removes even the kernel's link-local fe80:: address; gVisor's
  runsc (Debian 12's) does not apply that sysctl where it uses the host's network
  stack, and over fe80:: an instance would reach other instances and the host past
  the IPv4 rules. See docs/decisions.md.
- ``INPUT -p tcp -j DOCKPOOL-SOURCES`` (IPv4 and IPv6), from anywhere: each source address
  (an IPv6 /64) may hold at most ``connections_per_source`` connections to each of the
  ``limited_ports`` (the API's plain and HTTPS ports, the fleet's). Counted by the kernel
  before a byte of a request arrives, so one source cannot fill nginx's worker or the API's
  listener with connections that never send a header; this machine's own addresses
  (this_machine.py: the HTTPS front's connections to the API) are not counted.
"""
from __future__ import annotations

import argparse
import ipaddress
import itertools
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from .engine import connect, engine_errors
from .errors import DockpoolError, InvalidInput
from .labels import MANAGED_FILTER, OWNER
from .settings_files import read_settings
from .this_machine import ADDRESSES as THIS_MACHINE

log = logging.getLogger("dockpool.firewall")
EGRESS, INPUT, TENANTS, IPV6 = "DOCKPOOL-EGRESS", "DOCKPOOL-INPUT", "DOCKPOOL-TENANTS", "DOCKPOOL-IPV6"
SOURCES = "DOCKPOOL-SOURCES"
CONNECTIONS_PER_SOURCE = 64
DEFAULT_SETTINGS_FILE = "/etc/dockpool/firewall.json"
# What an instance may never reach unless the operator allows it: private networks,
# shared address space, loopback, link-local (cloud metadata), multicast and the like.
DEFAULT_DENY = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4")
_REJECT_TCP = "-p tcp -j REJECT --reject-with tcp-reset"
_REJECT = "-j REJECT --reject-with icmp-admin-prohibited"


def _networks(values: Any, key: str) -> tuple[str, ...]:
    if not isinstance(values, (list, tuple)):
        raise InvalidInput(f"{key}: expected a list of IPv4 networks such as 192.168.10.0/24", key)
    out = []
    for value in values:
        try:
            network = ipaddress.ip_network(str(value), strict=False)
        except ValueError:
            raise InvalidInput(f"{key}: {value!r} is not a network; give one such as 192.168.10.0/24", key) from None
        if network.version != 4:
            raise InvalidInput(f"{key}: {value!r} is IPv6; instances have IPv4 only on Docker's bridge", key)
        out.append(str(network))
    return tuple(out)


def _ports(values: Any, key: str) -> tuple[int, ...]:
    if not isinstance(values, (list, tuple)) or not all(isinstance(p, int) and 1 <= p <= 65535 for p in values):
        raise InvalidInput(f"{key}: expected a list of TCP port numbers", key)
    return tuple(values)


@dataclass(frozen=True)
class FirewallSettings:
    bridge: str = "docker0"
    deny: tuple[str, ...] = DEFAULT_DENY
    allow: tuple[str, ...] = ()  # networks the operator opens on purpose (a lab's storage)
    dns: tuple[str, ...] = ()  # resolvers instances use (often on a private network)
    host_ports: tuple[int, ...] = (8088, 22000)  # TCP ports of the host that instances may reach
    extra_deny: tuple[str, ...] = ()  # networks the operator closes beyond the defaults
    limited_ports: tuple[int, ...] = ()  # TCP ports whose connections are counted per source
    connections_per_source: int = CONNECTIONS_PER_SOURCE  # at once, to each limited port

    @classmethod
    def from_dict(cls, data: Any) -> "FirewallSettings":
        if not isinstance(data, dict):
            raise InvalidInput("firewall settings: expected an object", "settings")
        unknown = sorted(set(data) - {"bridge", "deny", "allow", "dns", "host_ports", "extra_deny", "limited_ports",
                                      "connections_per_source"})
        if unknown:
            raise InvalidInput(f"firewall settings: unknown key {unknown[0]!r}", unknown[0])
        bridge = data.get("bridge", "docker0")
        if not isinstance(bridge, str) or not bridge.replace("-", "").replace("_", "").isalnum() or len(bridge) > 15:
            raise InvalidInput(f"bridge: {bridge!r} is not an interface name", "bridge")
        dns = _networks(data.get("dns", []), "dns")
        if any(not n.endswith("/32") for n in dns):
            raise InvalidInput("dns: give single addresses", "dns")
        per_source = data.get("connections_per_source", CONNECTIONS_PER_SOURCE)
        if isinstance(per_source, bool) or not isinstance(per_source, int) or not 1 <= per_source <= 65535:
            raise InvalidInput(f"connections_per_source: {per_source!r} is not a number of connections from 1 to "
                               "65535", "connections_per_source")
        return cls(bridge=bridge, deny=_networks(data.get("deny", DEFAULT_DENY), "deny"),
                   allow=_networks(data.get("allow", []), "allow"), dns=dns,
                   host_ports=_ports(data.get("host_ports", [8088, 22000]), "host_ports"),
                   extra_deny=_networks(data.get("extra_deny", []), "extra_deny"),
                   limited_ports=_ports(data.get("limited_ports", []), "limited_ports"),
                   connections_per_source=per_source)


def load_settings(path: str = DEFAULT_SETTINGS_FILE) -> FirewallSettings:
    return FirewallSettings.from_dict(read_settings(path, "the firewall settings", "settings"))


def policy_rules(settings: FirewallSettings) -> str:
    """iptables-restore text for the egress and input chains (the tenants chain is only created)."""
    br = settings.bridge
    lines = ["*filter", f":{EGRESS} - [0:0]", f":{INPUT} - [0:0]"]
    egress = ["-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
              f"-o {br} -j {TENANTS}",
              f"-o {br} {_REJECT_TCP}", f"-o {br} {_REJECT}"]
    egress += [f"-d {net} -j RETURN" for net in settings.allow]
    egress += [f"-d {dns} -p {proto} --dport 53 -j RETURN" for dns in settings.dns for proto in ("udp", "tcp")]
    for net in settings.deny + settings.extra_deny:
        egress += [f"-d {net} {_REJECT_TCP}", f"-d {net} {_REJECT}"]
    egress.append("-j RETURN")
    lines += [f"-A {EGRESS} {rule}" for rule in egress]
    ports = ",".join(str(p) for p in settings.host_ports)
    inbound = ["-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]
    if ports:
        inbound.append(f"-p tcp -m multiport --dports {ports} -j RETURN")
    inbound += [_REJECT_TCP, _REJECT]
    lines += [f"-A {INPUT} {rule}" for rule in inbound]
    lines += per_source_rules(settings, ipv6=False)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def per_source_rules(settings: FirewallSettings, ipv6: bool) -> list[str]:
    """The DOCKPOOL-SOURCES chain (its declaration and rules): a new connection to a limited port
    over the source's share is reset. One rule per port, so each port has its own count."""
    mask, this_machine = (64, [a for a in THIS_MACHINE if ":" in a]) if ipv6 else \
        (32, [a for a in THIS_MACHINE if ":" not in a])
    rules = [f"-s {address} -j RETURN" for address in this_machine]
    rules += [f"-p tcp --dport {port} --syn -m connlimit --connlimit-above {settings.connections_per_source} "
              f"--connlimit-mask {mask} -j REJECT --reject-with tcp-reset" for port in settings.limited_ports]
    return [f":{SOURCES} - [0:0]"] + [f"-A {SOURCES} {rule}" for rule in rules]


def tenant_rules(instances: Iterable[tuple[str, str]]) -> str:
    """iptables-restore text for the tenants chain: (owner, address) pairs -> every
    ordered pair of one owner's addresses may talk; nothing else is accepted here."""
    by_owner: dict[str, list[str]] = {}
    for owner, address in instances:
        if owner and address:
            by_owner.setdefault(owner, []).append(str(ipaddress.ip_address(address)))
    lines = ["*filter", f":{TENANTS} - [0:0]"]
    for owner in sorted(by_owner):
        for src, dst in itertools.permutations(sorted(set(by_owner[owner])), 2):
            lines.append(f"-A {TENANTS} -s {src}/32 -d {dst}/32 -j ACCEPT")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def ipv6_rules(settings: Optional[FirewallSettings] = None) -> str:
    """ip6tables-restore text for the IPv6 chain: nothing an instance starts passes (replies to
    the host's own connections do); and the per-source chain for IPv6 callers."""
    return "\n".join(["*filter", f":{IPV6} - [0:0]", f"-A {IPV6} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
                      f"-A {IPV6} -p tcp -j REJECT --reject-with tcp-reset",
                      f"-A {IPV6} -j REJECT --reject-with icmp6-adm-prohibited",
                      *per_source_rules(settings or FirewallSettings(), ipv6=True), "COMMIT"]) + "\n"


def _iptables(*argv: str, check: bool = True, ipv6: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip6tables" if ipv6 else "iptables", "-w", *argv], capture_output=True, text=True, check=check)


def _restore(text: str, ipv6: bool = False) -> None:
    program = "ip6tables-restore" if ipv6 else "iptables-restore"
    done = subprocess.run([program, "-w", "--noflush"], input=text, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DockpoolError(f"{program} refused the rules: {done.stderr.strip()}")


def _jumps(settings: FirewallSettings) -> list[tuple[bool, str, list[str]]]:
    """(IPv6?, chain, rule) of every jump into dockpool's chains; IPv6 only where the host has it."""
    # Each is inserted first in its chain, in this order: the per-source count goes in before the
    # bridge's jump, which so stays the first rule of INPUT.
    jumps = [(False, "INPUT", ["-p", "tcp", "-j", SOURCES]),
             (False, "DOCKER-USER", ["-i", settings.bridge, "-j", EGRESS]),
             (False, "INPUT", ["-i", settings.bridge, "-j", INPUT])]
    if os.path.exists("/proc/sys/net/ipv6"):
        jumps += [(True, "INPUT", ["-p", "tcp", "-j", SOURCES])]
        jumps += [(True, chain, ["-i", settings.bridge, "-j", IPV6]) for chain in ("INPUT", "FORWARD")]
    return jumps


def apply(settings: FirewallSettings) -> None:
    """Create or refresh the chains and make sure each is jumped to, first, exactly once.
    Works before Docker starts (DOCKER-USER is created here; Docker keeps it)."""
    for chain in ("DOCKER-USER", TENANTS):
        if _iptables("-n", "-L", chain, check=False).returncode != 0:
            _iptables("-N", chain)
    _restore(policy_rules(settings))
    if os.path.exists("/proc/sys/net/ipv6"):
        _restore(ipv6_rules(settings), ipv6=True)
    for ipv6, chain, rule in _jumps(settings):
        if _iptables("-C", chain, *rule, check=False, ipv6=ipv6).returncode != 0:
            _iptables("-I", chain, "1", *rule, ipv6=ipv6)


def remove(settings: FirewallSettings) -> None:
    """Take every dockpool rule and chain away (teardown)."""
    for ipv6, chain, rule in _jumps(settings):
        while _iptables("-C", chain, *rule, check=False, ipv6=ipv6).returncode == 0:
            _iptables("-D", chain, *rule, ipv6=ipv6)
    chains = [(False, chain) for chain in (EGRESS, INPUT, TENANTS, SOURCES)] + [(True, IPV6), (True, SOURCES)]
    for ipv6, chain in chains:
        if _iptables("-n", "-L", chain, check=False, ipv6=ipv6).returncode == 0:
            _iptables("-F", chain, ipv6=ipv6)
            _iptables("-X", chain, ipv6=ipv6)


def instance_addresses(client: Any, bridge_network: str = "bridge") -> list[tuple[str, str]]:
    """(owner, address on the bridge) of every running dockpool instance."""
    with engine_errors("listing the running instances"):
        summaries = client.api.containers(filters={"label": MANAGED_FILTER, "status": "running"})
    found = []
    for summary in summaries:
        network = ((summary.get("NetworkSettings") or {}).get("Networks") or {}).get(bridge_network) or {}
        found.append(((summary.get("Labels") or {}).get(OWNER, ""), network.get("IPAddress", "")))
    return found


def sync_tenants(client: Any) -> None:
    _restore(tenant_rules(instance_addresses(client)))


def watch(settings: FirewallSettings, connect_engine: Any) -> None:
    """Apply the policy, then keep the tenants chain in step with the instances, for ever:
    across Docker restarts (the event stream ends; reconnect and resync)."""
    apply(settings)
    while True:
        try:
            client = connect_engine()
            with engine_errors("following the engine's container events"):
                events = client.api.events(decode=True, filters={"type": "container", "event": ["start", "die", "destroy"]})
                apply(settings)  # Docker may have been restarted: jumps first, then the pairs
                sync_tenants(client)
                for _event in events:  # any start, death or removal: rebuild the pairs
                    sync_tenants(client)
        except DockpoolError as exc:
            log.warning("%s; retrying in 1 s", exc.message)
        except Exception as exc:  # pylint: disable=broad-except  # a stream cut mid-event (urllib3's own errors): never exit
            log.info("engine not reachable (%s); retrying in 1 s", exc)
        time.sleep(1)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dockpool-firewall", description=__doc__)
    parser.add_argument("action", choices=["apply", "watch", "remove", "check"])
    parser.add_argument("--settings", default=DEFAULT_SETTINGS_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dockpool-firewall %(levelname)s %(message)s")
    try:
        settings = load_settings(args.settings)
        if args.action == "check":
            return 0  # the settings parse: what the role's validate asks
        if args.action == "apply":
            apply(settings)
        elif args.action == "remove":
            remove(settings)
        else:
            watch(settings, lambda: connect(timeout=30))
    except DockpoolError as exc:
        log.error("%s", exc.message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pylint: disable=ansible-bad-function  # a program (python -m), not module code

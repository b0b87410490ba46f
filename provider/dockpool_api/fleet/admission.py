"""Which posted P2PRC peers a provider may be made to connect to.

What clients and P2PRC peers post (``/IpTable``, ``POST /v1/peers``) makes the provider ask
an address for ``/server_info``, and then again every round. A client must not be able to aim
that at what only the provider reaches: its engine's networks (its bridges, so every
instance of every client), its own addresses, loopback, link-local and private ranges, or at
a port that is some other service's (sshd, the jump host, an instance's published port, the
ports browsers refuse to speak HTTP to). The operator opens private ranges (and loopback) by
naming their networks in ``peer_networks``; the catch-alls ``0.0.0.0/0`` and ``::/0`` open
only public addresses. The engine's networks are never peers, whatever is opened.
"""
from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from dockpool.libraries import host_counters
from dockpool.networks import NetworkRule

from .members import Member

# The Fetch standard's "bad ports" (what browsers refuse to send HTTP to: other protocols' ports).
BAD_PORTS = frozenset({
    0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109,
    110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531,
    532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060,
    5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080})
SURROUNDINGS_TTL = 5.0  # seconds the engine's networks and published ports are reused
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix: the last 32 bits are the IPv4 address


def embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Optional[ipaddress.IPv4Address]:
    """The IPv4 address an IPv6 address reaches through a translator or tunnel (NAT64, 6to4, Teredo,
    IPv4-mapped), or None. Python 3.11 counts NAT64 and 6to4 addresses as global whatever they wrap."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)


@dataclass(frozen=True)
class Surroundings:
    """What the provider is, as read from its host and engine."""

    networks: tuple[str, ...] = ()  # the engine's networks (bridges): its instances live there
    addresses: frozenset[str] = frozenset()  # the host's own addresses
    published: frozenset[int] = frozenset()  # ports the engine's containers publish on the host


def read_surroundings(client: Any) -> Surroundings:
    """The engine's networks and published ports (``client``: a docker SDK client) and the host's addresses."""
    networks = tuple(config["Subnet"] for net in client.api.networks()
                     for config in ((net.get("IPAM") or {}).get("Config") or []) if config.get("Subnet"))
    published = frozenset(port["PublicPort"] for container in client.api.containers()
                          for port in container.get("Ports") or [] if port.get("PublicPort"))
    return Surroundings(networks, own_addresses(), published)


def own_addresses() -> frozenset[str]:
    """The host's own addresses, every interface's."""
    return frozenset(ipaddress.ip_address(a.address.split("%")[0]).compressed
                     for nic in host_counters().net_if_addrs().values() for a in nic
                     if a.family.name in ("AF_INET", "AF_INET6"))


@dataclass
class PeerAdmission:
    """The rule for P2PRC peers: ``refusal`` says why an entry may not be asked, or None."""

    rule: NetworkRule = field(default_factory=NetworkRule)
    service_ports: frozenset[int] = frozenset()  # this provider's other services (jump sshd, fleet listener)
    surroundings: Callable[[], Surroundings] = Surroundings

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._read: tuple[float, Optional[Surroundings]] = (0.0, None)

    def _current(self) -> Surroundings:
        with self._lock:
            taken, known = self._read
            if known is None or time.monotonic() - taken > SURROUNDINGS_TTL:
                known = self.surroundings()
                self._read = (time.monotonic(), known)
            return known

    def refusal(self, entry: Member, members: Iterable[tuple[str, str]] = ()) -> Optional[tuple[str, str]]:
        """(field, why) when the entry's address or port may not be asked; ``members``: the fleet's
        (address, name), which are reached over the fleet's TLS only."""
        address, port = entry.peer_key
        where = "IPV4" if entry.ipv4 else "IPV6"
        ip, here = ipaddress.ip_address(address), self._current()
        if not self.rule.permits(address):
            return where, (f"{address} is outside the networks allowed for peers (peer_networks "
                           f"{', '.join(self.rule.allow) or 'none'}; never {', '.join(self.rule.deny) or 'none'})")
        inside = next((net for net in here.networks if ip in ipaddress.ip_network(net)), None)
        if inside is not None:
            return where, f"{address} is in {inside}, a network of this provider's engine (its instances): never a peer"
        inner = embedded_ipv4(ip)
        if inner is not None and not self.rule.opens(address) and (
                str(inner) in here.addresses or not inner.is_global
                or any(inner in ipaddress.ip_network(net) for net in here.networks if ":" not in net)):
            return where, (f"{address} wraps the IPv4 address {inner} (NAT64, 6to4, Teredo or IPv4-mapped), which is "
                           "this provider's own, a loopback, private, link-local or reserved address or its engine's: "
                           "a peer there is allowed only where the operator names its network in peer_networks")
        member = next((name for member_address, name in members if member_address == address), None)
        if member is not None:
            return where, f"{address} is fleet member {member}'s address: members are reached over the fleet's TLS only"
        own = address in here.addresses or ip.is_loopback  # every loopback address reaches this host
        if (own or not ip.is_global or ip.is_multicast) and not self.rule.opens(address):
            kind = "this provider's own" if own else "a loopback, private, link-local or reserved"
            return where, (f"{address} is {kind} address: a peer there is allowed only where the operator names its "
                           "network in peer_networks (0.0.0.0/0 and ::/0 open public addresses only)")
        return self._port_refusal(port, own)

    def _port_refusal(self, port: int, own: bool) -> Optional[tuple[str, str]]:
        if port in BAD_PORTS:
            return "ServerPort", f"{port} is another protocol's port (one browsers refuse too), never a peer's API"
        if port in self.service_ports:
            return "ServerPort", f"{port} is a port of this provider's own services (jump host, fleet), never a peer's API"
        if own and port in self._current().published:
            return "ServerPort", f"{port} is an instance's published port on this provider, never a peer's API"
        return None

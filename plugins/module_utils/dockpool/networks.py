"""Which addresses a provider accepts for a purpose: networks allowed, and networks denied
inside them (peers of the fleet, sources that may speak P2PRC, the operator's networks).
The default denial keeps loopback, link-local and multicast addresses out of the peer table."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable

DEFAULT_DENY = ("127.0.0.0/8", "::1/128", "0.0.0.0/8", "169.254.0.0/16", "fe80::/10", "224.0.0.0/4", "ff00::/8")


@dataclass(frozen=True)
class NetworkRule:
    """Which addresses may be peers: inside ``allow`` and not inside ``deny``."""

    allow: tuple[str, ...] = ("0.0.0.0/0", "::/0")
    deny: tuple[str, ...] = DEFAULT_DENY

    def permits(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # judged as the IPv4 address it reaches
        return _contains(self.allow, ip) and not _contains(self.deny, ip)

    def opens(self, address: str) -> bool:
        """Whether the operator named a network holding ``address`` (not just a catch-all): what
        opens loopback, private and link-local addresses to P2PRC peers (admission.py)."""
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in map(ipaddress.ip_network, self.allow) if net.version == ip.version and net.prefixlen)


def _contains(networks: Iterable[str], ip: Any) -> bool:
    """Whether one of ``networks`` of ``ip``'s family holds it."""
    return any(ip in net for net in map(ipaddress.ip_network, networks) if net.version == ip.version)

"""How an address is written and opened: one rule for IPv6 brackets and socket families,
shared by the jump key list, the peer calls, the desktop's links and the API's listeners."""
from __future__ import annotations

import socket


def is_ipv6(host: str) -> bool:
    """Whether ``host`` is an IPv6 address (the one test: only IPv6 addresses hold a colon)."""
    return ":" in host


def url_host(host: str) -> str:
    """``host`` as it goes before ``:port`` in a URL or an ssh destination (IPv6 in brackets)."""
    return f"[{host}]" if is_ipv6(host) else host


def host_port(host: str, port: int | str) -> str:
    """``host:port``, IPv6 in brackets."""
    return f"{url_host(host)}:{port}"


def family(address: str) -> socket.AddressFamily:
    """The socket family for a literal address (a host name is taken as IPv4, as before)."""
    return socket.AF_INET6 if is_ipv6(address) else socket.AF_INET

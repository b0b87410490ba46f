"""The addresses that are this machine itself, declared once: the API's HTTPS front connects from
them, the host's own tools call from them, and the operator's local credential is taken only from
them. The plain listener and the firewall do not count them per source, nginx's ``geo`` map does
not either (a unit test holds the template to this list), and the drain's credential needs one.

Only 127.0.0.1 and ::1, not the whole of 127/8: the rest of loopback is where the tests' floods
attack from (127.0.0.5), and nothing of the provider's own connects from there."""
from __future__ import annotations

ADDRESSES: tuple[str, ...] = ("127.0.0.1", "::1")


def is_this_machine(address: str) -> bool:
    """Whether a caller's address (as the socket gives it, IPv4-mapped IPv6 included) is this machine."""
    return address.removeprefix("::ffff:") in ADDRESSES

"""How a member behind NAT is reached: the relays its signed entry names (docs/nat.md).

A provider that nothing can reach keeps a reverse tunnel to each of its relays (roles/tunnel);
on every relay it listens on the same three ports: its HTTPS API, its jump sshd and its fleet
port. Its signed ``dockpool`` block lists them, so that a relayer can neither add a relay nor
take one away. The member stays the same member under the same certificate whichever path
reaches it: only the address and port change, never the name the TLS handshake checks.

``first_live`` picks the path: the first relay, in the member's order, that accepted a TCP
connection lately. A relay that died costs one short connect, then is skipped for a while.
``admitted`` comes first: a relay is signed by the member, not chosen by this provider, so each
of its addresses (a DNS name looked up within the call's time) must pass the peer rule, as a
member's own address must; the others are skipped, never dialled (issue 33's review).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from dockpool.errors import InvalidInput

log = logging.getLogger(__name__)

MAX_RELAYS = 8
LOOKUP_MOST = 10.0  # seconds a DNS lookup may take, whatever time a call has left
MAX_SEEN = 1024  # relays' answers remembered at most (entries churn: a bound, not the table's size)
_LOOKUPS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="relay-lookup")
FIELDS = ("address", "api_port", "ssh_port", "fleet_port")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


@dataclass(frozen=True)
class RelayPath:
    """One relay of a member: where clients and members connect, and its ports there."""

    address: str
    api_port: int
    ssh_port: int
    fleet_port: int


def _address(value: Any, where: str) -> str:
    if isinstance(value, str):
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            ip = None
        if ip is not None and ip.version == 6 and (ip.ipv4_mapped is not None or ip.scope_id):
            raise InvalidInput(f"{where}: IPv4-mapped addresses and scope ids are not accepted", where)
        if ip is not None:
            return ip.compressed
        if _HOSTNAME.match(value.lower()):
            return value.lower()
    raise InvalidInput(f"{where}: must be an IP address or a DNS name", where)


def parse(value: Any, where: str) -> tuple[RelayPath, ...]:
    """The ``relays`` list of a member's entry (or of the provider's settings), checked whole."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_RELAYS:
        raise InvalidInput(f"{where}: must be a list of 1 to {MAX_RELAYS} relays "
                           "(a member that is not relayed leaves it out)", where)
    paths = []
    for i, record in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(record, dict) or set(record) != set(FIELDS):
            raise InvalidInput(f"{at}: must be an object with exactly {', '.join(FIELDS)}", at)
        ports = []
        for name in FIELDS[1:]:
            port = record[name]
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise InvalidInput(f"{at}.{name}: must be a port number from 1 to 65535", f"{at}.{name}")
            ports.append(port)
        paths.append(RelayPath(_address(record["address"], f"{at}.address"), *ports))
    if len({(p.address, p.fleet_port) for p in paths}) != len(paths):
        raise InvalidInput(f"{where}: names one relay twice", where)
    return tuple(paths)


def render(paths: Sequence[RelayPath]) -> list[dict[str, Any]]:
    return [{"address": p.address, "api_port": p.api_port, "ssh_port": p.ssh_port, "fleet_port": p.fleet_port}
            for p in paths]


def signed_part(paths: Sequence[RelayPath]) -> list[Any]:
    """What the relays add to a member's signed bytes: nothing when it is not relayed, so an
    entry without relays signs (and verifies) as before."""
    return [{"relays": render(paths)}] if paths else []


def resolve(address: str, port: int, timeout: float) -> list[str]:
    """The IP addresses of ``address``: itself when it is one; a DNS name's, looked up within
    ``timeout`` (getaddrinfo has no timeout of its own: it runs on a small pool and is waited for
    so long). A name that does not resolve has none; TimeoutError when the time is up."""
    try:
        return [ipaddress.ip_address(address).compressed]
    except ValueError:
        pass
    lookup = _LOOKUPS.submit(socket.getaddrinfo, address, port, type=socket.SOCK_STREAM)
    try:
        found = lookup.result(timeout=max(0.0, min(timeout, LOOKUP_MOST)))
    except concurrent.futures.TimeoutError:
        lookup.cancel()
        raise TimeoutError(f"looking up {address} took longer than {timeout:.3g} s") from None
    except OSError:
        return []
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]).compressed for info in found))


def admitted(paths: Sequence[RelayPath], permits: Callable[[str], bool], left: Callable[[], float]
             ) -> list[RelayPath]:
    """The member's relays at the addresses ``permits`` (the peer rule) allows, each DNS name
    replaced by the address it resolved to (so what was checked is what is dialled). A refused
    one is logged by name and skipped. ``left()``: the call's time left (raises TimeoutError)."""
    allowed = []
    for path in paths:
        for address in resolve(path.address, path.fleet_port, left()):
            if permits(address):
                allowed.append(dataclasses.replace(path, address=address))
            else:
                log.info("relay %s (%s) skipped: outside the networks allowed for peers", path.address, address)
    return allowed


def _connects(address: str, port: int, timeout: float) -> bool:
    try:
        socket.create_connection((address, port), timeout=timeout).close()
        return True
    except OSError:
        return False


class Liveness:
    """Which relays answered lately: a TCP connect, remembered for ``ttl`` seconds."""

    def __init__(self, probe: Callable[[str, int, float], bool] = _connects, ttl: float = 10.0,
                 timeout: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._probe, self._ttl, self._timeout, self._clock = probe, ttl, timeout, clock
        self._seen: dict[tuple[str, int], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def up(self, address: str, port: int, most: float = float("inf")) -> bool:
        """Whether it answered lately, or answers within ``most`` seconds (and the probe's own
        timeout); a probe cut short by ``most`` is not remembered as an answer of "down"."""
        now = self._clock()
        with self._lock:
            known = self._seen.get((address, port))
        if known and now - known[0] < self._ttl:
            return known[1]
        timeout = min(self._timeout, most)
        answered = self._probe(address, port, timeout)
        if answered or timeout >= self._timeout:
            with self._lock:
                self._seen.pop((address, port), None)  # re-inserted last: the dict stays oldest first
                self._seen[(address, port)] = (now, answered)
                self._bound(now)
        return answered

    def _bound(self, now: float) -> None:
        if len(self._seen) <= MAX_SEEN:
            return
        for key in [k for k, (at, _) in self._seen.items() if now - at >= self._ttl]:
            del self._seen[key]
        while len(self._seen) > MAX_SEEN:
            del self._seen[next(iter(self._seen))]

    def first_live(self, paths: Sequence[RelayPath], port: Callable[[RelayPath], int] = lambda p: p.fleet_port,
                   left: Callable[[], float] = lambda: float("inf")) -> Optional[RelayPath]:
        """The first relay that answers on ``port`` (by default the fleet's); None when none does.
        Each probe gets at most ``left()``, the call's time left (which raises once it is up)."""
        for path in paths:
            if self.up(path.address, port(path), left()):
                return path
        return None


LIVENESS = Liveness()

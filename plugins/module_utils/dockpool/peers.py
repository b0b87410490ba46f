"""The peer table: providers that know each other, in P2PRC's ``{"ip_address": [...]}`` shape.

Entries from others are validated field by field, their addresses in one canonical
spelling; a new peer is kept only when its own ``/server_info`` answers within one
deadline for the whole exchange (no redirects, bounded size, only in allowed
networks, a bounded number at once for the whole service and per merge), so the
table cannot be filled with junk or turned into a probe of arbitrary hosts, and a
slow peer cannot hold the service. Known entries are never rewritten by third parties.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from .atomicfile import read_json, write_json
from .errors import Busy, InvalidInput

log = logging.getLogger("dockpool.peers")

_TEXT = {"Name": 64, "MachineUsername": 64, "EscapeImplementation": 32, "PublicKey": 16384, "CustomInformation": 1024}
_PORTS = ("ServerPort", "UDPServerPort", "BareMetalSSHPort")
_FLAGS = ("NAT", "ProxyServer")  # P2PRC writes these as "True"/"False"
_NUMBERS = ("Latency", "Download", "Upload")
FIELDS = ("Name", "MachineUsername", "IPV4", "IPV6", "Latency", "Download", "Upload", "ServerPort", "UDPServerPort",
          "BareMetalSSHPort", "NAT", "EscapeImplementation", "ProxyServer", "UnSafeMode", "PublicKey", "CustomInformation")
_MAX_HEAD = 16384  # bytes of status line and headers accepted from a peer
DEFAULT_DENY = ("127.0.0.0/8", "::1/128", "0.0.0.0/8", "169.254.0.0/16", "fe80::/10", "224.0.0.0/4", "ff00::/8")


def _error(index: int, key: str, problem: str) -> InvalidInput:
    return InvalidInput(f"ip_address[{index}].{key}: {problem}", f"ip_address[{index}].{key}")


def validate_entry(entry: Any, index: int = 0) -> dict[str, Any]:
    """One P2PRC peer entry, normalised: every field present, typed and bounded."""
    if not isinstance(entry, dict):
        raise InvalidInput(f"ip_address[{index}]: must be an object", f"ip_address[{index}]")
    unknown = sorted(set(entry) - set(FIELDS))
    if unknown:
        raise _error(index, unknown[0], f"unknown field; allowed: {', '.join(FIELDS)}")
    out: dict[str, Any] = {}
    for key, limit in _TEXT.items():
        value = entry.get(key, "")
        if not isinstance(value, str) or len(value) > limit or any(ord(c) < 32 for c in value if key != "PublicKey"):
            raise _error(index, key, f"must be text of at most {limit} characters")
        out[key] = value
    for key, version in (("IPV4", 4), ("IPV6", 6)):
        out[key] = _address(entry.get(key, ""), version, index, key)
    if not out["IPV4"] and not out["IPV6"]:
        raise _error(index, "IPV4", "an IPV4 or IPV6 address is required")
    for key in _PORTS:
        value = str(entry.get(key, "")) if not isinstance(entry.get(key), bool) else "x"
        if value and not (value.isdigit() and 1 <= int(value) <= 65535):
            raise _error(index, key, "must be a port number from 1 to 65535")
        out[key] = value
    if not out["ServerPort"]:
        raise _error(index, "ServerPort", "the peer's API port is required")
    for key in _NUMBERS:
        value = entry.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value > 1e18:
            raise _error(index, key, "must be a number from 0")
        out[key] = value
    for key in _FLAGS:
        value = entry.get(key, "False")
        if not (isinstance(value, bool) or (isinstance(value, str) and value in ("True", "False", ""))):
            raise _error(index, key, 'must be "True" or "False"')  # and not 0 or 1, which equal False and True
        out[key] = "True" if value is True or value == "True" else "False"
    unsafe = entry.get("UnSafeMode", False)
    if not isinstance(unsafe, bool):
        raise _error(index, "UnSafeMode", "must be true or false")
    out["UnSafeMode"] = unsafe
    return out


def _address(value: Any, version: int, index: int, key: str) -> str:
    """One canonical spelling per address, so that no two spellings make two entries and
    no IPv4 address hides inside IPv6 (``::ffff:127.0.0.1``) from the network rules."""
    if value == "":
        return ""
    try:
        ip = ipaddress.ip_address(value) if isinstance(value, str) else None
    except ValueError:
        ip = None
    if ip is None or ip.version != version:
        raise _error(index, key, f"must be an IPv{version} address (or empty)")
    if version == 6 and (ip.ipv4_mapped is not None or ip.scope_id):
        raise _error(index, key, "IPv4-mapped addresses and scope ids are not accepted; give an IPv4 address as IPV4")
    return ip.compressed


def validate_table(data: Any, max_entries: int) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("ip_address"), list) or set(data) != {"ip_address"}:
        raise InvalidInput('the peer table must be an object with an "ip_address" list and nothing else', "ip_address")
    if len(data["ip_address"]) > max_entries:
        raise InvalidInput(f"ip_address: at most {max_entries} peers may be sent", "ip_address", {"max": max_entries})
    return [validate_entry(entry, i) for i, entry in enumerate(data["ip_address"])]


def peer_key(entry: dict[str, Any]) -> tuple[str, str]:
    return (entry["IPV4"] or entry["IPV6"], entry["ServerPort"])


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


def _contains(networks: Iterable[str], ip: Any) -> bool:
    """Whether one of ``networks`` of ``ip``'s family holds it."""
    return any(ip in net for net in map(ipaddress.ip_network, networks) if net.version == ip.version)


def fetch_server_info(address: str, port: int, deadline: float, max_bytes: int) -> bytes:
    """GET /server_info over HTTP/1.0 within ``deadline`` seconds for the whole exchange
    (connect, send, every read): a peer trickling one byte a second costs at most that.
    Returns the body of a 200 answer; raises OSError or ValueError otherwise."""
    ends = time.monotonic() + deadline
    host = f"[{address}]" if ":" in address else address
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    answer = bytearray()
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(deadline)
        sock.connect((address, port))
        sock.sendall(f"GET /server_info HTTP/1.0\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n".encode())
        while len(answer) <= max_bytes + _MAX_HEAD:
            left = ends - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete answer within {deadline} s")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        else:
            raise ValueError(f"the answer exceeds {max_bytes} bytes")
    head, found, body = bytes(answer).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if not found or len(status) < 2 or status[1] != b"200":
        raise ValueError(f"answered {head[:40]!r}")  # redirects are not followed
    return body


def verify_peer(entry: dict[str, Any], rule: NetworkRule, deadline: float = 3.0, max_bytes: int = 65536) -> bool:
    """Does the peer's own /server_info answer, in time, with a P2PRC specs object?"""
    address = entry["IPV4"] or entry["IPV6"]
    if not rule.permits(address):
        log.info("not asking %s: outside the networks allowed for peers", address)
        return False
    try:
        info = json.loads(fetch_server_info(address, int(entry["ServerPort"]), deadline, max_bytes))
    except (OSError, ValueError) as exc:
        log.info("peer %s:%s did not answer as a provider: %s", address, entry["ServerPort"], exc)
        return False
    return isinstance(info, dict) and isinstance(info.get("Hostname"), str)


@dataclass
class PeerTable:
    """The provider's table, kept in one JSON file; safe to use from many threads."""

    path: str
    me: dict[str, Any]
    max_peers: int = 256
    rule: NetworkRule = field(default_factory=NetworkRule)
    verify: Optional[Callable[[dict[str, Any]], bool]] = None
    checks_at_once: int = 4  # for the whole service, whatever the number of request workers
    checks_per_merge: int = 8  # new peers checked per merge; the rest come again with the next exchange

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(self.checks_at_once)
        self.me = validate_entry(self.me)
        self._peers = self._load()
        if self.verify is None:
            self.verify = lambda entry: verify_peer(entry, self.rule)

    def _load(self) -> dict[tuple[str, str], dict[str, Any]]:
        try:
            entries = validate_table(read_json(self.path), self.max_peers)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, InvalidInput) as exc:
            aside = f"{self.path}.corrupt"
            log.error("peer table %s is unreadable (%s); kept as %s, starting again from this provider alone",
                      self.path, getattr(exc, "message", exc), aside)
            os.replace(self.path, aside)
            write_json(self.path, {"ip_address": []})
            return {}
        return {peer_key(e): e for e in entries if peer_key(e) != peer_key(self.me)}

    def table(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {"ip_address": [self.me] + list(self._peers.values())}

    def _verified(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The entries whose peers answer, checked on at most the free check slots."""
        slots = 0
        while slots < len(entries) and self._checks.acquire(blocking=False):
            slots += 1
        if entries and not slots:
            raise Busy("peer checks: this provider is checking as many peers as it allows; try again shortly",
                       "ip_address", {"retry_after": 5})
        try:
            if not entries:
                return []
            with ThreadPoolExecutor(max_workers=slots) as pool:
                return [e for e, ok in zip(entries, pool.map(self.verify, entries)) if ok]
        finally:
            for _slot in range(slots):
                self._checks.release()

    def merge(self, data: Any) -> dict[str, list[dict[str, Any]]]:
        """Validate a table, keep the new peers that answer, save, and return the merged table."""
        incoming = validate_table(data, self.max_peers)
        with self._lock:
            room = self.max_peers - len(self._peers)
            new = [e for e in incoming if peer_key(e) not in self._peers and peer_key(e) != peer_key(self.me)]
        unique = list({peer_key(e): e for e in new}.values())[: max(0, min(room, self.checks_per_merge))]
        answered = self._verified(unique)
        with self._lock:
            for entry in answered:
                if len(self._peers) < self.max_peers:
                    self._peers.setdefault(peer_key(entry), entry)
            if answered:
                write_json(self.path, {"ip_address": list(self._peers.values())}, mode=0o644)
                log.info("added %d peers: %s", len(answered), ", ".join(e["Name"] or peer_key(e)[0] for e in answered))
            return {"ip_address": [self.me] + list(self._peers.values())}

"""The peer table: providers that know each other, in P2PRC's ``{"ip_address": [...]}`` shape.

Entries from others are validated field by field, their addresses in one canonical
spelling; a new peer is kept only when its own ``/server_info`` answers within one
deadline for the whole exchange (no redirects, bounded size, only in allowed
networks, a bounded number at once for the whole service and per merge), so the
table cannot be filled with junk or turned into a probe of arbitrary hosts, and a
slow peer cannot hold the service. The table itself, with last-heard times and
expiry, is membership.py; the request itself, transport.py.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import socket
from typing import Any, Callable, Optional

from dockpool.errors import InvalidInput
from dockpool.networks import NetworkRule

from .transport import exchange

log = logging.getLogger("dockpool.peers")

_TEXT = {"Name": 64, "MachineUsername": 64, "EscapeImplementation": 32, "PublicKey": 16384, "CustomInformation": 1024}
_PORTS = ("ServerPort", "UDPServerPort", "BareMetalSSHPort")
# Booleans in P2PRC's IpAddress since April 2025; its older tables (and its shipped
# p2p/ip_table.json) write "True"/"False". Both are read; booleans are answered.
FLAGS = ("NAT", "ProxyServer")
_FLAG_TEXT = {"true": True, "false": False, "": False}
_NUMBERS = ("Download", "Upload")  # float64 in P2PRC
MAX_DURATION = 2**63 - 1  # Latency is a Go time.Duration: an int64 of ns, which its decoder takes only whole
FIELDS = ("Name", "MachineUsername", "IPV4", "IPV6", "Latency", "Download", "Upload", "ServerPort", "UDPServerPort",
          "BareMetalSSHPort", "NAT", "EscapeImplementation", "ProxyServer", "UnSafeMode", "PublicKey", "CustomInformation")


def _error(index: int, key: str, problem: str) -> InvalidInput:
    return InvalidInput(f"ip_address[{index}].{key}: {problem}", f"ip_address[{index}].{key}")


def validate_entry(entry: Any, index: int = 0) -> dict[str, Any]:
    """One P2PRC peer entry, normalised: every field present, typed (as P2PRC's Go client decodes
    them) and bounded; a dockpool provider's entry also carries its signed membership record
    (see membership.py). Fields P2PRC may add are dropped, as Go's decoder drops them."""
    if not isinstance(entry, dict):
        raise InvalidInput(f"ip_address[{index}]: must be an object", f"ip_address[{index}]")
    out: dict[str, Any] = {}
    for key, limit in _TEXT.items():
        value = entry.get(key)
        value = "" if value is None else value  # Go writes a null string as null, and reads it as ""
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
    for key, high in (("Latency", MAX_DURATION), *((k, 10**18) for k in _NUMBERS)):
        value = entry.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
            raise _error(index, key, f"must be a number from 0 to {high}")
        out[key] = round(value) if key == "Latency" else value
    for key in FLAGS:
        out[key] = _flag(entry.get(key, False), index, key)
    unsafe = entry.get("UnSafeMode", False)
    if not isinstance(unsafe, bool):
        raise _error(index, "UnSafeMode", "must be true or false")
    out["UnSafeMode"] = unsafe
    if "dockpool" in entry:
        out["dockpool"] = _record(entry["dockpool"], index)
    return out


def _flag(value: Any, index: int, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _FLAG_TEXT:
        return _FLAG_TEXT[value.lower()]
    # and not 0 or 1, which equal False and True
    raise _error(index, key, 'must be true or false (or P2PRC\'s older "True" or "False")')


def _record(record: Any, index: int) -> dict[str, Any]:
    """The membership record's shape (the signature itself is checked by membership.py)."""
    where = f"ip_address[{index}].dockpool"
    if not isinstance(record, dict) or not {"key", "version", "signature", "age", "fleet_port"} <= set(record) \
            or not set(record) <= {"key", "version", "signature", "age", "fleet_port", "draining"}:
        raise InvalidInput(f"{where}: must be an object with key, version, signature, age and fleet_port "
                           "(and draining)", where)
    for name, size in (("key", 44), ("signature", 88)):
        if not isinstance(record[name], str) or len(record[name]) != size:
            raise InvalidInput(f"{where}.{name}: must be {size} characters of base64", f"{where}.{name}")
    version = record["version"]
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 2**63:
        raise InvalidInput(f"{where}.version: must be a positive integer", f"{where}.version")
    age = record["age"]
    if isinstance(age, bool) or not isinstance(age, (int, float)) or not 0 <= age <= 1e9:
        raise InvalidInput(f"{where}.age: must be a number of seconds from 0", f"{where}.age")
    port = record["fleet_port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidInput(f"{where}.fleet_port: must be a port number from 1 to 65535", f"{where}.fleet_port")
    if "draining" in record and record["draining"] is not True:
        raise InvalidInput(f"{where}.draining: only ever true (a provider that is not draining leaves it out)",
                           f"{where}.draining")
    return {"key": record["key"], "version": record["version"], "signature": record["signature"], "age": float(age),
            "fleet_port": port, **({"draining": True} if "draining" in record else {})}


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
    """A table's entries; other keys are ignored, as P2PRC's decoder ignores them."""
    if not isinstance(data, dict) or not isinstance(data.get("ip_address"), list):
        raise InvalidInput('the peer table must be an object with an "ip_address" list', "ip_address")
    if len(data["ip_address"]) > max_entries:
        raise InvalidInput(f"ip_address: at most {max_entries} peers may be sent", "ip_address", {"max": max_entries})
    return [validate_entry(entry, i) for i, entry in enumerate(data["ip_address"])]


def peer_key(entry: dict[str, Any]) -> tuple[str, str]:
    return (entry["IPV4"] or entry["IPV6"], entry["ServerPort"])


def server_info(entry: dict[str, Any], rule: NetworkRule, deadline: float = 3.0, max_bytes: int = 65536,
                port: Optional[int] = None, wrap: Optional[Callable[[socket.socket], socket.socket]] = None,
                ) -> Optional[dict[str, Any]]:
    """The peer's own /server_info answer, when it gives one in time that is a P2PRC specs object."""
    address = entry["IPV4"] or entry["IPV6"]
    if not rule.permits(address):
        log.info("not asking %s: outside the networks allowed for peers", address)
        return None
    try:
        status, content = exchange(address, port or int(entry["ServerPort"]), deadline, max_bytes, wrap=wrap)
        info = json.loads(content) if status == 200 else None
    except (OSError, ValueError) as exc:
        log.info("peer %s:%s did not answer as a provider: %s", address, entry["ServerPort"], exc)
        return None
    return info if isinstance(info, dict) and isinstance(info.get("Hostname"), str) else None


def verify_peer(entry: dict[str, Any], rule: NetworkRule, deadline: float = 3.0, max_bytes: int = 65536,
                expected_key: Optional[str] = None, port: Optional[int] = None,
                wrap: Optional[Callable[[socket.socket], socket.socket]] = None) -> bool:
    """Does the peer's own /server_info answer, in time, with a P2PRC specs object (naming
    ``expected_key`` as its membership key, for a signed entry)? A fleet member is asked on its
    fleet ``port`` through ``wrap`` (mutual TLS, its certificate's name checked)."""
    info = server_info(entry, rule, deadline, max_bytes, port, wrap)
    if info is None:
        return False
    address, extra = entry["IPV4"] or entry["IPV6"], info.get("dockpool")
    if expected_key is not None and not (isinstance(extra, dict) and extra.get("membership_key") == expected_key):
        log.info("peer %s:%s does not hold the key its entry was signed with", address, entry["ServerPort"])
        return False
    return True

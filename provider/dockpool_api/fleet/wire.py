"""P2PRC's wire form of the peer table, ``{"ip_address": [...]}``, both ways: parsed once at the
edge into ``Member``s (members.py) and rendered back from them, byte for byte as P2PRC reads it.

Entries from others are validated field by field, their addresses and ports in one canonical
spelling, so that no two spellings make two entries and a signature covers one rendering. A
P2PRC peer is asked for its own ``/server_info`` (``server_info``: plain HTTP through the one
client, transport.py, within one deadline, bounded, never redirected, only in allowed
networks), so the table cannot be filled with junk or turned into a probe of arbitrary hosts.
The table itself, with last-heard times and expiry, is membership.py.
"""
from __future__ import annotations

import ipaddress
import json
import logging
from typing import Any, Optional

from dockpool.errors import InvalidInput
from dockpool.networks import NetworkRule

from . import relays
from .members import Member, Seal
from .transport import Call, HttpTransport, Transport, Unreachable, ask

log = logging.getLogger("dockpool_api.fleet.wire")

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
_SEAL = ("key", "version", "signature", "age", "fleet_port")


def _error(index: int, key: str, problem: str) -> InvalidInput:
    return InvalidInput(f"ip_address[{index}].{key}: {problem}", f"ip_address[{index}].{key}")


def parse_entry(entry: Any, index: int = 0) -> Member:
    """One P2PRC peer entry: every field typed (as P2PRC's Go client decodes them) and bounded;
    a dockpool provider's entry also carries its seal, the ``dockpool`` block (see membership.py).
    Fields P2PRC may add are dropped, as Go's decoder drops them."""
    if not isinstance(entry, dict):
        raise InvalidInput(f"ip_address[{index}]: must be an object", f"ip_address[{index}]")
    text: dict[str, str] = {}
    for key, limit in _TEXT.items():
        value = entry.get(key)
        value = "" if value is None else value  # Go writes a null string as null, and reads it as ""
        if not isinstance(value, str) or len(value) > limit or any(ord(c) < 32 for c in value if key != "PublicKey"):
            raise _error(index, key, f"must be text of at most {limit} characters")
        text[key] = value
    ipv4, ipv6 = (_address(entry.get(key, ""), version, index, key) for key, version in (("IPV4", 4), ("IPV6", 6)))
    if not ipv4 and not ipv6:
        raise _error(index, "IPV4", "an IPV4 or IPV6 address is required")
    ports = {key: _port(entry.get(key, ""), index, key) for key in _PORTS}
    server_port = ports["ServerPort"]
    if server_port is None:
        raise _error(index, "ServerPort", "the peer's API port is required")
    numbers: dict[str, Any] = {}
    for key, high in (("Latency", MAX_DURATION), *((k, 10**18) for k in _NUMBERS)):
        value = entry.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= high:
            raise _error(index, key, f"must be a number from 0 to {high}")
        numbers[key] = round(value) if key == "Latency" else value
    unsafe = entry.get("UnSafeMode", False)
    if not isinstance(unsafe, bool):
        raise _error(index, "UnSafeMode", "must be true or false")
    return Member(name=text["Name"], server_port=server_port, ipv4=ipv4, ipv6=ipv6, username=text["MachineUsername"],
                  latency=numbers["Latency"], download=numbers["Download"], upload=numbers["Upload"],
                  udp_port=ports["UDPServerPort"], ssh_port=ports["BareMetalSSHPort"],
                  nat=_flag(entry.get("NAT", False), index, "NAT"), escape=text["EscapeImplementation"],
                  proxy=_flag(entry.get("ProxyServer", False), index, "ProxyServer"), unsafe=unsafe,
                  public_key=text["PublicKey"], custom=text["CustomInformation"],
                  seal=_seal(entry["dockpool"], index) if "dockpool" in entry else None)


def _port(value: Any, index: int, key: str) -> Optional[int]:
    text = str(value) if not isinstance(value, bool) else "x"
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        raise _error(index, key, "must be a port number from 1 to 65535")
    return int(text)


def _flag(value: Any, index: int, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _FLAG_TEXT:
        return _FLAG_TEXT[value.lower()]
    # and not 0 or 1, which equal False and True
    raise _error(index, key, 'must be true or false (or P2PRC\'s older "True" or "False")')


def _seal(record: Any, index: int) -> Seal:
    """The membership record's shape (the signature itself is checked by membership.py)."""
    where = f"ip_address[{index}].dockpool"
    if not isinstance(record, dict) or not set(_SEAL) <= set(record) or not set(record) <= {*_SEAL, "draining", "relays"}:
        raise InvalidInput(f"{where}: must be an object with key, version, signature, age and fleet_port "
                           "(and draining, relays)", where)
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
    paths = relays.parse(record["relays"], f"{where}.relays") if "relays" in record else ()
    return Seal(record["key"], version, record["signature"], port, "draining" in record, float(age), paths)


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
    if isinstance(ip, ipaddress.IPv6Address) and (ip.ipv4_mapped is not None or ip.scope_id):
        raise _error(index, key, "IPv4-mapped addresses and scope ids are not accepted; give an IPv4 address as IPV4")
    return ip.compressed


def parse_table(data: Any, max_entries: int) -> list[Member]:
    """A table's entries; other keys are ignored, as P2PRC's decoder ignores them."""
    if not isinstance(data, dict) or not isinstance(data.get("ip_address"), list):
        raise InvalidInput('the peer table must be an object with an "ip_address" list', "ip_address")
    if len(data["ip_address"]) > max_entries:
        raise InvalidInput(f"ip_address: at most {max_entries} peers may be sent", "ip_address", {"max": max_entries})
    return [parse_entry(entry, i) for i, entry in enumerate(data["ip_address"])]


def _port_text(port: Optional[int]) -> str:
    return "" if port is None else str(port)


def p2prc_fields(member: Member) -> dict[str, Any]:
    """The entry as P2PRC's IpAddress has it, in its order (what its peers and ``/IpTable`` see)."""
    return {"Name": member.name, "MachineUsername": member.username, "IPV4": member.ipv4, "IPV6": member.ipv6,
            "Latency": member.latency, "Download": member.download, "Upload": member.upload,
            "ServerPort": str(member.server_port), "UDPServerPort": _port_text(member.udp_port),
            "BareMetalSSHPort": _port_text(member.ssh_port), "NAT": member.nat, "EscapeImplementation": member.escape,
            "ProxyServer": member.proxy, "UnSafeMode": member.unsafe, "PublicKey": member.public_key,
            "CustomInformation": member.custom}


def render_entry(member: Member) -> dict[str, Any]:
    """The entry as members exchange it: P2PRC's fields, and the seal for a member."""
    fields = p2prc_fields(member)
    seal = member.seal
    if seal is None:
        return fields
    return {**fields, "dockpool": {"key": seal.key, "version": seal.version, "signature": seal.signature,
                                   "age": seal.age, "fleet_port": seal.fleet_port,
                                   **({"draining": True} if seal.draining else {}),
                                   **({"relays": relays.render(seal.relays)} if seal.relays else {})}}


def render_table(members: list[Member]) -> dict[str, list[dict[str, Any]]]:
    return {"ip_address": [render_entry(m) for m in members]}


def p2prc_table(members: list[Member]) -> dict[str, list[dict[str, Any]]]:
    """P2PRC's table exactly: its fields only, never a seal."""
    return {"ip_address": [p2prc_fields(m) for m in members]}


PLAIN = HttpTransport(None)  # P2PRC's peers speak plain HTTP; the same client, the same bounds


def server_info(member: Member, rule: NetworkRule, deadline: float = 3.0, max_bytes: int = 65536,
                transport: Transport = PLAIN) -> Optional[dict[str, Any]]:
    """The peer's own /server_info answer, when it gives one in time that is a P2PRC specs object."""
    if not rule.permits(member.address):
        log.info("not asking %s: outside the networks allowed for peers", member.address)
        return None
    try:
        status, content = ask(transport, member, Call("GET", "/server_info", deadline=deadline, most=max_bytes))
        info = json.loads(content) if status == 200 else None
    except (Unreachable, ValueError) as exc:
        log.info("peer %s:%s did not answer as a provider: %s", member.address, member.server_port, exc)
        return None
    return info if isinstance(info, dict) and isinstance(info.get("Hostname"), str) else None


def verify_peer(member: Member, rule: NetworkRule, deadline: float = 3.0, max_bytes: int = 65536) -> bool:
    """Does the peer's own /server_info answer, in time, with a P2PRC specs object?"""
    return server_info(member, rule, deadline, max_bytes) is not None

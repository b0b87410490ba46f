"""What the provider's jump account lets each client reach, kept current by the core.

Two pieces of state, both derived from the instances' labels:

- the key list sshd reads for the jump user (``Policy.jump_keys_file``): one line per
  key material, each allowed to forward only to its owner's instances' ports. The core
  rewrites it whenever an instance is created or removed, so a removal revokes the key
  for every new connection at once, and sshd reads it with ``cat`` (no interpreter per
  key a client offers);
- the ports of removed instances that jump connections opened before the removal were
  allowed to reach (``Policy.released_ports_file``), with the client that owned them. sshd
  fixes what a connection may forward to when it authenticates, and such a connection can
  open new forwards for as long as it lives. Only that client's keys were allowed the port,
  so only another client's instance is at risk: a released port is not given to another
  client while any connection of the jump user older than the release is alive, and is
  given back first to the client that released it (so one client cycling instances with an
  idle connection reuses its own ports and cannot hold the pool from everyone else).
"""
from __future__ import annotations

import logging
import pwd
import time
from typing import Iterable, Optional

from .addresses import host_port
from .atomicfile import read_json, write_json, write_text
from .labels import NAME, OWNER, Record, key_owners, keyed_records, published_ports
from .libraries import host_counters
from .policy import Policy

log = logging.getLogger("dockpool.jump")
# A connection authenticated from a key list read just before the rewrite forks its
# session a moment later: sessions that young still count as older than the release.
RELEASE_SLACK = 5.0


def jump_key_lines(records: Iterable[Record], target_host: str) -> list[str]:
    """authorized_keys lines: one per key material (sshd uses only the first line a key
    matches), allowing the ports of that key owner's instances that carry the key."""
    keyed = keyed_records(records)
    owners = key_owners(keyed)
    destinations: dict[str, list[str]] = {}
    names: dict[str, list[str]] = {}
    for record, material in keyed:
        if owners[material] != record.labels.get(OWNER, ""):
            continue  # another client's copy of this key opens nothing
        ports = [host_port(target_host, p.host_port) for p in published_ports(record.labels) if p.protocol == "tcp"]
        if not ports:
            continue
        destinations.setdefault(material, []).extend(ports)
        names.setdefault(material, []).append(record.labels.get(NAME, record.name))
    lines = []
    for material, ports in destinations.items():
        options = ",".join(["restrict", "port-forwarding"] + [f'permitopen="{d}"' for d in sorted(set(ports))])
        lines.append(f"{options} {material} dockpool:{','.join(sorted(names[material]))}")
    return lines


def write_jump_keys(records: Iterable[Record], path: str, target_host: str) -> None:
    """Rewrite the jump account's key list at ``path``, whole."""
    write_text(path, "".join(f"{line}\n" for line in jump_key_lines(records, target_host)))


def _jump_sessions_started(jump_user: str) -> list[float]:
    """Start times of the jump user's processes: sshd's per-connection processes."""
    try:
        uid = pwd.getpwnam(jump_user).pw_uid
    except KeyError:
        return []
    started = []
    for proc in host_counters().process_iter(["uids", "create_time"]):
        uids = proc.info.get("uids")
        if uids is not None and uids.real == uid and proc.info.get("create_time") is not None:
            started.append(proc.info["create_time"])
    return started


Released = dict[int, tuple[float, str]]  # port: (when, the client that owned it; "" if unknown)


def _entry(value: object) -> Optional[tuple[float, str]]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), ""  # written before owners were kept: held against everyone
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], (int, float)) and isinstance(value[1], str):
        return float(value[0]), value[1]
    return None


def _read_released(path: str) -> Released:
    try:
        data = read_json(path)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.error("ignoring unreadable %s (%s): it is rewritten at the next removal", path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    entries = {int(port): _entry(value) for port, value in data.items() if str(port).isdigit()}
    return {port: entry for port, entry in entries.items() if entry is not None}


def _write_released(path: str, released: Released) -> None:
    write_json(path, {str(port): list(entry) for port, entry in sorted(released.items())})


def release_ports(ports: Iterable[int], owner: str, policy: Policy, now: Optional[float] = None) -> None:
    """Record that ``owner``'s ``ports`` were freed now (call under the placement lock)."""
    if not (policy.released_ports_file and policy.jump_user):
        return
    released = _read_released(policy.released_ports_file)
    moment = time.time() if now is None else now
    released.update({port: (moment, owner) for port in ports})
    _write_released(policy.released_ports_file, released)


def held_ports(policy: Policy) -> dict[int, str]:
    """Freed ports that a jump connection opened before their release may still reach, each
    with the client whose keys could reach it (call under the placement lock); entries no
    connection holds any more are dropped."""
    if not (policy.released_ports_file and policy.jump_user):
        return {}
    released = _read_released(policy.released_ports_file)
    if not released:
        return {}
    sessions = _jump_sessions_started(policy.jump_user)
    held = {port: entry for port, entry in released.items()
            if any(start <= entry[0] + RELEASE_SLACK for start in sessions)}
    if held != released:
        _write_released(policy.released_ports_file, held)
    return {port: owner for port, (_when, owner) in held.items()}

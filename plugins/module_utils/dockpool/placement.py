"""Where an instance goes: its dedicated cores or shared pool, and its host ports.

Pure functions over what the engine already holds; the instance manager feeds
them the current containers under the placement lock.
"""
from __future__ import annotations

import errno
import socket
from typing import Callable, Iterable

from .addresses import family
from .cputopology import Topology
from .errors import CapacityExhausted, InvalidInput
from .policy import PortRange


def allocate_ports(
    port_range: PortRange,
    used: Iterable[int],
    count: int,
    is_free: Callable[[int], bool] = lambda port: True,
    first: Iterable[int] = (),
) -> list[int]:
    """The ``count`` lowest ports of the range not used by a container and free on the host,
    taking ``first`` (ports of the range to reuse before any other) first."""
    if count == 0:
        return []
    taken = set(used)
    chosen: list[int] = []
    preferred = sorted(p for p in set(first) if p in port_range)
    for port in preferred + [p for p in port_range if p not in set(preferred)]:
        if port in taken or not is_free(port):
            continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise CapacityExhausted(
        f"ports: {count} free host port(s) are needed but only {len(chosen)} remain in "
        f"{port_range.start}-{port_range.end}; remove unused instances or widen the port range",
        "extra_ports",
        {"needed": count, "free": len(chosen)},
    )


def port_is_bindable(address: str) -> Callable[[int], bool]:
    """A probe that a port is free on the host for something other than Docker (sshd, a web server)."""
    def probe(port: int) -> bool:
        with socket.socket(family(address), socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
            try:
                sock.bind((address, port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    return False
                raise
        return True

    return probe


def max_dedicated_cores(topology: Topology, shared_cores_min: int) -> int:
    return max(0, topology.physical_cores - shared_cores_min)


def allocate_dedicated(
    topology: Topology, dedicated_in_use: Iterable[int], cores: int, shared_cores_min: int
) -> list[int]:
    """Logical CPUs for ``cores`` whole physical cores, siblings kept together.

    Takes the highest-numbered free cores, leaving CPU 0 (where the host's own
    interrupts and services tend to run) to the shared pool as long as possible.
    """
    limit = max_dedicated_cores(topology, shared_cores_min)
    if cores > limit:
        raise InvalidInput(
            f"cpus: {cores} dedicated cores asked, but this host has {topology.physical_cores} physical cores "
            f"and keeps {shared_cores_min} for shared use, so at most {limit} can be dedicated",
            "cpus",
            {"max": limit},
        )
    busy = set(dedicated_in_use)
    free = [core for core in topology.cores if not busy.intersection(core)]
    available = len(free) - shared_cores_min
    if cores > available:
        raise CapacityExhausted(
            f"cpus: {cores} dedicated cores asked but only {max(0, available)} are free "
            f"({shared_cores_min} kept for shared use); stop or remove an instance with dedicated cores",
            "cpus",
            {"free": max(0, available)},
        )
    chosen = free[-cores:]
    return sorted(cpu for core in chosen for cpu in core)


def shared_pool(topology: Topology, dedicated_in_use: Iterable[int]) -> list[int]:
    """Every logical CPU not dedicated to an instance."""
    busy = set(dedicated_in_use)
    return [cpu for cpu in topology.logical_cpus if cpu not in busy]


def check_cpu_share(share: float, pool: list[int]) -> None:
    if not pool:
        raise CapacityExhausted(
            "cpu_share: every core is dedicated, none is left for shared instances", "cpu_share"
        )
    if share > len(pool):
        raise InvalidInput(
            f"cpu_share: {share} CPUs asked but the shared pool has {len(pool)} CPUs", "cpu_share", {"max": len(pool)}
        )

"""The host's CPU topology: which logical CPUs are hyper-thread siblings of one core.

Read from sysfs rather than guessed from counts, because placement must keep
siblings together and the numbering of siblings differs between vendors
(Intel often pairs 0 with N/2, some AMD and ARM hosts pair 0 with 1).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from .errors import InvalidInput

SYSFS_CPU = "/sys/devices/system/cpu"


def parse_cpulist(text: str) -> list[int]:
    """Parse the kernel's cpulist format ('0-3,8,10-11') into sorted CPU numbers."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if low > high or low < 0:
                    raise ValueError(part)
                cpus.update(range(low, high + 1))
            else:
                cpu = int(part)
                if cpu < 0:
                    raise ValueError(part)
                cpus.add(cpu)
        except ValueError:
            raise InvalidInput(f"cpuset: {text!r} is not a CPU list such as 0-3,8", "cpuset") from None
    return sorted(cpus)


def format_cpulist(cpus: Iterable[int]) -> str:
    """The inverse of parse_cpulist, with ranges folded: [0,1,2,5] -> '0-2,5'."""
    ordered = sorted(set(cpus))
    ranges: list[str] = []
    start = prev = None
    for cpu in ordered:
        if prev is not None and cpu == prev + 1:
            prev = cpu
            continue
        if start is not None:
            ranges.append(f"{start}-{prev}" if prev != start else str(start))
        start = prev = cpu
    if start is not None:
        ranges.append(f"{start}-{prev}" if prev != start else str(start))
    return ",".join(ranges)


@dataclass(frozen=True)
class Topology:
    """Physical cores as tuples of their logical CPUs, ordered by their first CPU."""

    cores: tuple[tuple[int, ...], ...]
    sockets: int = 1

    @property
    def logical_cpus(self) -> list[int]:
        return sorted(cpu for core in self.cores for cpu in core)

    @property
    def physical_cores(self) -> int:
        return len(self.cores)

    @property
    def threads_per_core(self) -> int:
        """The hyper-threading factor: logical CPUs per physical core (1 without SMT)."""
        if not self.cores:
            return 1
        return max(1, round(len(self.logical_cpus) / len(self.cores)))


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def read_topology(sysfs: str = SYSFS_CPU, allowed: Optional[Iterable[int]] = None) -> Topology:
    """Group the online CPUs this process may use into physical cores.

    ``allowed`` defaults to the process's CPU affinity, so a provider running in
    a restricted cpuset never hands out CPUs Docker would refuse.
    """
    root = Path(sysfs)
    online_text = _read(root / "online")
    online = set(parse_cpulist(online_text)) if online_text else set(range(os.cpu_count() or 1))
    if allowed is None:
        allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else online
    usable = online & set(allowed)
    groups: dict[tuple[int, ...], None] = {}
    packages: set[str] = set()
    for cpu in sorted(usable):
        topo = root / f"cpu{cpu}" / "topology"
        siblings_text = _read(topo / "core_cpus_list") or _read(topo / "thread_siblings_list")
        siblings = tuple(c for c in parse_cpulist(siblings_text) if c in usable) if siblings_text else (cpu,)
        groups.setdefault(siblings or (cpu,), None)
        packages.add(_read(topo / "physical_package_id") or "0")
    cores = tuple(sorted(groups, key=lambda core: core[0]))
    return Topology(cores=cores, sockets=max(1, len(packages)))

"""A container's cgroup, where the kernel keeps its processes and counts what they use: in the
layouts Docker makes (cgroup v1 and v2, cgroupfs and systemd drivers). Reading other
containers' cgroups takes no privilege; their processes' /proc entries take root."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

ROOT = "/sys/fs/cgroup"
_LAYOUTS = ("docker/{id}", "system.slice/docker-{id}.scope")


def unified(root: str = ROOT) -> bool:
    """cgroup v2 alone (the controllers in one tree), as Debian 12 boots; else v1 (or hybrid)."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def cgroup_dir(container_id: str, controller: str, root: str = ROOT) -> Optional[str]:
    """The container's cgroup folder for ``controller`` (v1's hierarchy name, such as "cpuacct";
    ignored under v2), or None where it has none (not running, or another layout)."""
    base = root if unified(root) else os.path.join(root, controller)
    for layout in _LAYOUTS:
        folder = os.path.join(base, layout.format(id=container_id))
        if os.path.isdir(folder):
            return folder
    return None


def pids_of(container_id: str, root: str = ROOT) -> Optional[list[str]]:
    """The container's processes, or None where its cgroup is not found."""
    folder = cgroup_dir(container_id, "pids", root)
    try:
        with open(os.path.join(folder or "", "cgroup.procs"), encoding="ascii") as handle:
            return handle.read().split()
    except OSError:
        return None


@dataclass(frozen=True)
class Counters:
    """What the kernel counted for one cgroup since it was made (``generation`` names that cgroup:
    a restarted container gets a new one, whose counters start at zero)."""

    generation: str
    cpu_ns: int
    memory_bytes: int
    read_bytes: int
    write_bytes: int


def _read(path: str) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


def _fields(text: str) -> dict[str, int]:
    """``key value`` lines (cpu.stat) into a dict."""
    return {k: int(v) for k, v in (line.split()[:2] for line in text.splitlines() if len(line.split()) >= 2)}


def counters(container_id: str, root: str = ROOT) -> Optional[Counters]:
    """The container's counters, or None where its cgroup is gone (it stopped meanwhile)."""
    try:
        if unified(root):
            folder = cgroup_dir(container_id, "", root)
            if folder is None:
                return None
            io = [dict(f.split("=", 1) for f in line.split()[1:]) for line in _read(f"{folder}/io.stat").splitlines()]
            return Counters(str(os.stat(folder).st_ino), _fields(_read(f"{folder}/cpu.stat"))["usage_usec"] * 1000,
                            int(_read(f"{folder}/memory.current")), sum(int(d.get("rbytes", 0)) for d in io),
                            sum(int(d.get("wbytes", 0)) for d in io))
        cpu, memory, blkio = (cgroup_dir(container_id, c, root) for c in ("cpuacct", "memory", "blkio"))
        if cpu is None or memory is None or blkio is None:
            return None
        io_lines = [line.split() for line in _read(f"{blkio}/blkio.throttle.io_service_bytes").splitlines()]
        return Counters(str(os.stat(cpu).st_ino), int(_read(f"{cpu}/cpuacct.usage")),
                        int(_read(f"{memory}/memory.usage_in_bytes")),
                        sum(int(p[2]) for p in io_lines if len(p) == 3 and p[1] == "Read"),
                        sum(int(p[2]) for p in io_lines if len(p) == 3 and p[1] == "Write"))
    except (OSError, KeyError, ValueError):
        return None


def network_bytes(pid: str, proc: str = "/proc") -> Optional[tuple[int, int]]:
    """(bytes in, bytes out) of every interface but loopback in the network namespace of ``pid``."""
    try:
        lines = _read(os.path.join(proc, pid, "net", "dev")).splitlines()[2:]
    except OSError:
        return None
    received = sent = 0
    for line in lines:
        name, _sep, numbers = line.partition(":")
        if name.strip() != "lo":
            fields = numbers.split()
            received, sent = received + int(fields[0]), sent + int(fields[8])
    return received, sent

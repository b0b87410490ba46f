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


def _interfaces(pid: str, proc: str) -> Optional[dict[str, tuple[int, int]]]:
    """Interface -> (bytes in, bytes out) in the network namespace of ``pid``; None when it is gone."""
    try:
        lines = _read(os.path.join(proc, pid, "net", "dev")).splitlines()[2:]
    except OSError:
        return None
    found = {}
    for line in lines:
        name, _sep, numbers = line.partition(":")
        fields = numbers.split()
        found[name.strip()] = (int(fields[0]), int(fields[8]))
    return found


def _parent(pid: str, proc: str) -> Optional[str]:
    """The parent of ``pid`` (the field after the command, which may hold spaces and parentheses)."""
    try:
        return _read(os.path.join(proc, pid, "stat")).rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        return None


def network_bytes(pids: list[str], proc: str = "/proc") -> Optional[tuple[int, int]]:
    """(bytes in, bytes out) of every interface but loopback in the instance's own network
    namespace, the one the engine made for it: that of the first process the runtime started
    (its parent is outside the cgroup) whose namespace has an interface besides loopback. Under
    runc that is the instance's init; under gVisor the cgroup's first process is runsc's gofer,
    alone in an empty namespace (loopback only), and the sandbox, which carries the instance's
    traffic, comes next. The tenant's own processes descend from those, so they can never point
    the meter at a namespace of their own. None when no process is left (it stopped meanwhile)."""
    members = set(pids)
    counted: Optional[tuple[int, int]] = None
    for pid in sorted(pids, key=int):
        if _parent(pid, proc) in members:
            continue
        interfaces = _interfaces(pid, proc)
        if interfaces is None:
            continue
        outside = [v for name, v in interfaces.items() if name != "lo"]
        counted = (sum(v[0] for v in outside), sum(v[1] for v in outside))
        if outside:
            return counted
    return counted  # no interface but loopback (an instance without a network): (0, 0)

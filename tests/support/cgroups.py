"""Read a container's limits from the kernel's cgroup files, not from Docker."""
from __future__ import annotations

from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
# cgroup v1 file per limit, and its cgroup v2 equivalent.
FILES = {
    "memory": ("memory", "memory.limit_in_bytes", "memory.max"),
    "memory_reservation": ("memory", "memory.soft_limit_in_bytes", "memory.low"),
    "cpuset": ("cpuset", "cpuset.cpus", "cpuset.cpus"),
    "pids": ("pids", "pids.max", "pids.max"),
    "cpu_quota": ("cpu", "cpu.cfs_quota_us", "cpu.max"),
    "cpu_usage": ("cpuacct", "cpuacct.usage", "cpu.stat"),
}


def cgroup_value(container_id: str, limit: str) -> str:
    controller, v1_file, v2_file = FILES[limit]
    v1 = ROOT / controller / "docker" / container_id / v1_file
    if v1.exists():
        return v1.read_text().strip()
    for v2 in (ROOT / "system.slice" / f"docker-{container_id}.scope" / v2_file, ROOT / "docker" / container_id / v2_file):
        if v2.exists():
            return v2.read_text().strip()
    raise FileNotFoundError(f"no cgroup file for {limit} of {container_id[:12]}")


def cpu_ns(container_id: str) -> int:
    """The CPU time the kernel counted for the container's cgroup, in nanoseconds."""
    value = cgroup_value(container_id, "cpu_usage")
    if value.isdigit():
        return int(value)  # v1: nanoseconds
    return int(dict(line.split() for line in value.splitlines())["usage_usec"]) * 1000

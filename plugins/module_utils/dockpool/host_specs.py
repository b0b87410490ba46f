"""What a provider host has: platform, CPU topology, memory, disk and GPUs.

One dict shape serves every caller: the spec facts module returns it, the API
serves it (and projects it onto P2PRC's /server_info keys), placement reads
the topology from it.
"""
from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any, Optional

from .cputopology import Topology, read_topology
from .engine import connect, engine_errors
from .errors import DockpoolError
from .gpus import read_gpus
from .gvisor import read_runsc
from .libraries import host_counters

MIB = 1024 * 1024
DEFAULT_DATA_ROOT = "/var/lib/docker"


def parse_cpu_model(cpuinfo: str) -> Optional[str]:
    """The CPU's marketing name from /proc/cpuinfo (x86 'model name', ARM 'Model'/'Hardware')."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "model", "hardware", "cpu model", "processor"):
        model = fields.get(key)
        if model and not model.isdigit():
            return model
    return None


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value pairs of /etc/os-release with their quotes removed."""
    result: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            result[key] = value.strip().strip("'\"")
    return result


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def existing_path(path: str) -> str:
    """The nearest existing ancestor, so a missing Docker root still reports its disk."""
    current = Path(path)
    while not current.exists() and current != current.parent:
        current = current.parent
    return str(current)


def docker_data_root(docker_host: Optional[str] = None) -> str:
    """The engine's DockerRootDir, or Docker's default when the SDK or the engine is absent
    (specs are read before Docker is installed, to decide on the NVIDIA toolkit)."""
    try:
        client = connect(docker_host, timeout=5)
        try:
            with engine_errors("reading the engine's data root"):
                return client.info().get("DockerRootDir") or DEFAULT_DATA_ROOT
        finally:
            client.close()
    except DockpoolError:  # no SDK, no engine, no permission: all mean "use the default"
        return DEFAULT_DATA_ROOT


def cpu_specs(topology: Topology, cpuinfo: str) -> dict[str, Any]:
    return {
        "model": parse_cpu_model(cpuinfo) or platform.processor() or "unknown",
        "sockets": topology.sockets,
        "physical_cores": topology.physical_cores,
        "logical_cpus": len(topology.logical_cpus),
        "threads_per_core": topology.threads_per_core,
        "cores": [list(core) for core in topology.cores],
    }


def collect_specs(data_root: str = DEFAULT_DATA_ROOT, nvml: Any = None, topology: Optional[Topology] = None) -> dict[str, Any]:
    """Read the host now. ``nvml`` is the GPU seam (see gpus.read_gpus)."""
    os_release = parse_os_release(_read_text("/etc/os-release"))
    counters = host_counters()
    memory = counters.virtual_memory()
    disk_path = existing_path(data_root)
    disk = counters.disk_usage(disk_path)
    return {
        "hostname": socket.gethostname(),
        "platform": {
            "system": platform.system().lower(),
            "distribution": os_release.get("ID", "unknown"),
            "distribution_version": os_release.get("VERSION_ID", ""),
            "pretty_name": os_release.get("PRETTY_NAME", platform.platform()),
            "kernel": platform.release(),
            "architecture": platform.machine(),
        },
        "cpu": cpu_specs(topology or read_topology(), _read_text("/proc/cpuinfo")),
        "memory": {"total": memory.total, "available": memory.available},
        "disk": {"path": disk_path, "total": disk.total, "free": disk.free},
        "gpus": read_gpus(nvml),
        "runsc": read_runsc(),  # gVisor, where installed: its version and the arguments the engine passes it
        "load": dict(zip(("1m", "5m", "15m"), os.getloadavg())),
    }


def _smi(value: Any, unit: str = "") -> str:
    """A reading as ``nvidia-smi -q -x`` writes it, which P2PRC's Gpu structs hold as text:
    "30 %", "41 C", "1395 MHz"; "N/A" where the GPU has no such reading."""
    if value is None:
        return "N/A"
    return f"{value} {unit}" if unit else str(value)


def to_p2prc_server_info(specs: dict[str, Any]) -> dict[str, Any]:
    """Project specs onto the exact keys and types P2PRC clients read from /server_info
    (its GPU readings are nvidia-smi's text; /v1/specs keeps the numbers)."""
    gpu = specs["gpus"][0] if specs["gpus"] else None
    return {
        "Hostname": specs["hostname"],
        "Platform": specs["platform"]["distribution"],
        "CPU": specs["cpu"]["model"],
        "RAM": specs["memory"]["total"] // MIB,
        "Disk": specs["disk"]["total"] // MIB,
        "GPU": None
        if gpu is None
        else {
            "DriveVersion": _smi(gpu["driver"]),
            "Gpu": {
                "GpuName": _smi(gpu["name"]),
                "BiosVersion": _smi(gpu["vbios"]),
                "FanSpeed": _smi(gpu["fan_speed"], "%"),
                "Utilization": {"GpuUsage": _smi(gpu["utilization"]["gpu"], "%"),
                                "MemoryUsage": _smi(gpu["utilization"]["memory"], "%")},
                "Temperature": {"GpuTemp": _smi(gpu["temperature"], "C")},
                "Clock": {"GpuClock": _smi(gpu["clocks"]["graphics"], "MHz"), "GpuMemClock": _smi(gpu["clocks"]["memory"], "MHz")},
            },
        },
    }

"""An instance as asked for, validated and normalised before anything is touched."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from .errors import InvalidInput
from .placement import memory_limits
from .policy import Policy, check_runtime
from .units import parse_size
from .validation import validate_image_ref, validate_name, validate_public_key, whole_number

DEFAULT_IMAGE = "debian-sshd"


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    image: str
    owner: str
    public_key: Optional[str]
    ssh_user: str
    extra_ports: int
    gpu: bool
    cpus: Optional[int]  # dedicated physical cores; None: shared pool under cpu_share
    cpu_share: Optional[float]
    memory: int
    memory_reservation: int
    disk_limit: Optional[int]
    pids_limit: int
    runtime: str = "runc"  # the OCI runtime: the operator's per-instance choice, else the provider's for the image


def _share(value: Any, max_cpus: int) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = math.nan
    if isinstance(value, bool) or not math.isfinite(share) or share < 0.01 or share > max_cpus:
        raise InvalidInput(
            f"cpu_share: expected a number of CPUs from 0.01 to {max_cpus} (for example 0.5), got {value!r}", "cpu_share"
        )
    return round(share, 2)


def build_spec(params: dict[str, Any], policy: Policy, host_memory: int, logical_cpus: int) -> InstanceSpec:
    """Validate caller input (module parameters or an API body) into an InstanceSpec.

    Checks that need the engine (image exists, ports and cores free) happen at placement.
    """
    name = validate_name(params.get("name"), "name")
    image = validate_image_ref(params.get("image") or DEFAULT_IMAGE, "image")
    owner = validate_name(params.get("owner") or "operator", "owner")
    ssh_user = validate_name(params.get("ssh_user") or policy.ssh_user, "ssh_user")
    key = params.get("public_key")
    public_key = validate_public_key(key) if key not in (None, "") else None
    extra_ports = whole_number(params.get("extra_ports") or 0, "extra_ports", 0, policy.max_extra_ports)
    gpu = params.get("gpu") or False
    if not isinstance(gpu, bool):
        raise InvalidInput(f"gpu: expected true or false, got {gpu!r}", "gpu")
    cpus_value, share_value = params.get("cpus"), params.get("cpu_share")
    if cpus_value is not None and share_value is not None:
        raise InvalidInput(
            "cpus and cpu_share: give cpus (whole dedicated cores) or cpu_share (a part of the shared CPUs), not both",
            "cpus",
        )
    cpus = whole_number(cpus_value, "cpus", 1, max(1, logical_cpus)) if cpus_value is not None else None
    cpu_share = None if cpus is not None else _share(share_value if share_value is not None else policy.default_cpu_share, logical_cpus)
    max_memory = min(policy.max_memory or host_memory, host_memory)
    memory, reservation = memory_limits(
        parse_size(params.get("memory"), "memory"),
        parse_size(params.get("memory_reservation"), "memory_reservation"),
        policy.default_memory,
        max_memory,
    )
    disk_limit = parse_size(params.get("disk_limit"), "disk_limit")
    pids_limit = whole_number(params.get("pids_limit") or policy.pids_limit, "pids_limit", 16, 1_000_000)
    runtime = check_runtime(params["runtime"], "runtime") if params.get("runtime") else policy.runtime_for(image)
    return InstanceSpec(
        name=name,
        image=image,
        owner=owner,
        public_key=public_key,
        ssh_user=ssh_user,
        extra_ports=extra_ports,
        gpu=gpu,
        cpus=cpus,
        cpu_share=cpu_share,
        memory=memory,
        memory_reservation=reservation,
        disk_limit=disk_limit,
        pids_limit=pids_limit,
        runtime=runtime,
    )

"""The create request: each field declared once, and parsed once into an InstanceSpec.

Every field of ``InstanceSpec`` carries its declaration (how it is read, its bounds, its
default, one line of doc, whether an API client may send it). The adapters derive from
it: the module's options and documentation, the OpenAPI schema, the API's accepted fields,
the labels and the CLI's flags (tests/unit/test_create_request.py holds them to it).
``build_spec`` is the one parser; checks that need the engine happen at placement.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional

from .errors import InvalidInput
from .limits import PIDS_RANGE, Limits
from .policy import RUNTIMES, Policy, check_runtime
from .units import format_size, parse_size
from .validation import cpu_amount, validate_image_ref, validate_name, validate_public_key, whole_number

DEFAULT_IMAGE = "debian-sshd"
MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses a memory limit or reservation below 6 MiB


@dataclass(frozen=True)
class RequestField:
    name: str
    kind: str  # how it is read: name, image, key, count, flag, cpus, share, size, runtime
    doc: str
    default: str  # what a new instance gets when the field is not given
    client: bool  # an API client may send it; the others are the operator's (the module)
    low: Optional[int] = None  # a count's fixed lower bound (its upper one is the provider's limit)

    @property
    def choices(self) -> tuple[str, ...]:
        return RUNTIMES if self.kind == "runtime" else ()


def _declared(kind: str, doc: str, default: str = "", client: bool = False, low: Optional[int] = None) -> dict[str, Any]:
    """A field's declaration, kept in its dataclass metadata."""
    return {"request": (kind, doc, default, client, low)}


@dataclass(frozen=True)
class InstanceSpec:
    name: str = field(metadata=_declared(
        "name", "The instance's name, also its container name and hostname (1-63 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit).", client=True))
    image: str = field(metadata=_declared(
        "image", "An offered dockpool image (the folder name under files/images) or a local image reference; images "
        "are never pulled.", DEFAULT_IMAGE, client=True))
    owner: str = field(metadata=_declared(
        "name", "Who the instance belongs to (the API's client name).", "operator"))
    public_key: Optional[str] = field(metadata=_declared(
        "key", "One OpenSSH public key line, the only authorized key of the login user; options such as command= "
        "are refused.", client=True))
    ssh_user: str = field(metadata=_declared(
        "name", "The login user whose authorized_keys receives the key.", "the provider's ssh_user"))
    extra_ports: int = field(metadata=_declared(
        "count", "Extra TCP ports to publish, each the same number inside and out.", "0", client=True, low=0))
    gpu: bool = field(metadata=_declared(
        "flag", "Every NVIDIA GPU of the provider, through a device request.", "false", client=True))
    cpus: Optional[int] = field(metadata=_declared(
        "cpus", "Whole physical cores dedicated to the instance (siblings kept together); without it the instance "
        "shares the common cores.", "none (the shared cores)", client=True, low=1))
    cpu_share: Optional[float] = field(metadata=_declared(
        "share", "Without cpus: the CPUs of the shared pool the instance may use (0.5 is half a CPU).",
        "the provider's default_cpu_share"))
    memory: int = field(metadata=_declared(
        "size", "The most memory the instance may use (its hard limit), such as 512m or 2g.",
        "the provider's max_memory (or the host's RAM)", client=True))
    memory_reservation: int = field(metadata=_declared(
        "size", "The memory kept for the instance when the host runs short (its soft limit), at most memory.",
        "the provider's default_memory (at most memory)", client=True))
    disk_limit: Optional[int] = field(metadata=_declared(
        "size", "What the instance may write to its disk, such as 10g; over it the disk watchdog stops it.",
        "the provider's default_disk_limit", client=True))
    pids_limit: int = field(metadata=_declared(
        "count", "The most processes in the instance.", "the provider's pids_limit", low=PIDS_RANGE[0]))
    runtime: str = field(metadata=_declared(
        "runtime", "The OCI runtime: runc (the provider's kernel) or runsc (gVisor, a kernel in user space).",
        "the provider's choice for the image"))
    replica: bool = field(metadata=_declared(
        "flag", "Keep a copy of the instance's disk on another member of the fleet, refreshed every replica_interval "
        "seconds, for a restore should this provider stop (replica_all replicates them all).", "false", client=True))


REQUEST_FIELDS: tuple[RequestField, ...] = tuple(RequestField(f.name, *f.metadata["request"]) for f in fields(InstanceSpec))
CLIENT_FIELDS: tuple[str, ...] = tuple(f.name for f in REQUEST_FIELDS if f.client)


def _at_most(value: Optional[int], maximum: Optional[int], field_name: str, what: str = "this provider allows") -> None:
    if value is not None and maximum is not None and value > maximum:
        raise InvalidInput(f"{field_name}: {format_size(value)} is more than {what} ({format_size(maximum)})",
                           field_name, {"max": maximum})


def _at_least(value: int, field_name: str) -> None:
    if value < MIN_MEMORY:
        raise InvalidInput(f"{field_name}: at least {format_size(MIN_MEMORY)} (Docker's floor), got {format_size(value)}",
                           field_name, {"min": MIN_MEMORY})


def _memory(params: dict[str, Any], limits: Limits, host_memory: int) -> tuple[int, int]:
    """(hard, soft). The IaaS rule: the hard limit is the provider's cap unless a lower one is
    asked; the soft reservation is what was asked, else the provider's default, never above hard."""
    ceiling = limits.memory_ceiling(host_memory)
    hard = parse_size(params.get("memory"), "memory") or ceiling
    _at_most(hard, ceiling, "memory")
    _at_least(hard, "memory")
    soft = parse_size(params.get("memory_reservation"), "memory_reservation") or min(limits.default_memory, hard)
    _at_most(soft, hard, "memory_reservation", "the instance's memory limit")
    _at_least(soft, "memory_reservation")
    return hard, soft


def _cpus(params: dict[str, Any], limits: Limits, logical_cpus: int) -> tuple[Optional[int], Optional[float]]:
    """(dedicated cores, shared CPUs): one or the other."""
    cpus_value, share_value = params.get("cpus"), params.get("cpu_share")
    if cpus_value is not None and share_value is not None:
        raise InvalidInput("cpus and cpu_share: give cpus (whole dedicated cores) or cpu_share (a part of the shared "
                           "CPUs), not both", "cpus")
    if cpus_value is not None:
        return whole_number(cpus_value, "cpus", 1, max(1, limits.cpus_ceiling(logical_cpus))), None
    share = share_value if share_value is not None else min(limits.default_cpu_share, logical_cpus)
    return None, cpu_amount(share, "cpu_share", logical_cpus)


def _flag(value: Any, field_name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"{field_name}: expected true or false, got {value!r}", field_name)
    return value


def build_spec(params: dict[str, Any], policy: Policy, host_memory: int, logical_cpus: int,
               limits: Optional[Limits] = None) -> InstanceSpec:
    """Caller input (module parameters or an API body) as an InstanceSpec, held to ``limits``
    (the provider's, or as a client's narrow them)."""
    limits = limits or policy.limits
    image = validate_image_ref(params.get("image") or DEFAULT_IMAGE, "image")
    key = params.get("public_key")
    cpus, cpu_share = _cpus(params, limits, logical_cpus)
    memory, reservation = _memory(params, limits, host_memory)
    disk_limit = parse_size(params.get("disk_limit"), "disk_limit") or limits.default_disk_limit
    _at_most(disk_limit, limits.max_disk_limit, "disk_limit")
    return InstanceSpec(
        name=validate_name(params.get("name"), "name"),
        image=image,
        owner=validate_name(params.get("owner") or "operator", "owner"),
        public_key=validate_public_key(key) if key not in (None, "") else None,
        ssh_user=validate_name(params.get("ssh_user") or policy.ssh_user, "ssh_user"),
        extra_ports=whole_number(params.get("extra_ports") or 0, "extra_ports", 0, limits.max_extra_ports),
        gpu=_flag(params.get("gpu"), "gpu"),
        cpus=cpus,
        cpu_share=cpu_share,
        memory=memory,
        memory_reservation=reservation,
        disk_limit=disk_limit,
        pids_limit=whole_number(params.get("pids_limit") or limits.pids_limit, "pids_limit", *PIDS_RANGE),
        runtime=check_runtime(params["runtime"], "runtime") if params.get("runtime") else policy.runtime_for(image),
        replica=_flag(params.get("replica"), "replica"),
    )

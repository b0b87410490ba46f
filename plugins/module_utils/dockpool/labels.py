"""Instance state kept in Docker itself: the labels written at creation and the
view rebuilt from them, so every caller (module, API, watchdog, a restarted
service) sees the same truth without a side file.

Labels are immutable in Docker, and dockpool never changes a limit in place,
so the labels stay the record of what an instance was given.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

from .cputopology import parse_cpulist
from .desktop import desktop_view
from .errors import InvalidInput
from .spec import REQUEST_FIELDS, InstanceSpec
from .validation import key_fingerprint, key_material, validate_public_key

PREFIX = "dockpool."
MANAGED_BY = PREFIX + "managed-by"
MANAGER = "dockpool"
MANAGED_FILTER = f"{MANAGED_BY}={MANAGER}"
NAME = PREFIX + "name"
# The labels that record what was asked, one per field of the create request (spec.py) but its
# name, which is the container's own; a difference in one cannot be applied in place.
SPEC_LABELS = {f.name: PREFIX + f.name.replace("_", "-") for f in REQUEST_FIELDS if f.name != "name"}
OWNER = SPEC_LABELS["owner"]
IMAGE = SPEC_LABELS["image"]
SSH_USER = SPEC_LABELS["ssh_user"]
GPU = SPEC_LABELS["gpu"]
CPUS = SPEC_LABELS["cpus"]
CPU_SHARE = SPEC_LABELS["cpu_share"]
MEMORY = SPEC_LABELS["memory"]
MEMORY_RESERVATION = SPEC_LABELS["memory_reservation"]
DISK_LIMIT = SPEC_LABELS["disk_limit"]
PIDS_LIMIT = SPEC_LABELS["pids_limit"]
REPLICA = SPEC_LABELS["replica"]  # its owner asked for a replica (fleet/replicas.py)
RUNTIME = SPEC_LABELS["runtime"]  # the OCI runtime: runc or runsc (gVisor)
PUBLIC_KEY = SPEC_LABELS["public_key"]
CPUSET = PREFIX + "cpuset"
PORTS = PREFIX + "ports"
DISK_ENFORCEMENT = PREFIX + "disk-enforcement"  # "quota" (the filesystem's) or "watchdog"
ORIGIN = PREFIX + "origin"  # which caller made it: the API removes its own "api" instances left unstarted


@dataclass(frozen=True)
class PublishedPort:
    name: str
    container_port: int
    host_port: int
    protocol: str = "tcp"
    description: str = ""

    @property
    def docker_key(self) -> str:
        return f"{self.container_port}/{self.protocol}"


@dataclass(frozen=True)
class Record:
    """What the engine says of one container, from a list summary or a full inspect."""

    id: str
    name: str
    labels: dict
    status: str
    created: str

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> "Record":
        created = datetime.fromtimestamp(summary.get("Created", 0), timezone.utc).isoformat()
        names = summary.get("Names") or ["/"]
        return cls(summary["Id"], names[0].lstrip("/"), summary.get("Labels") or {}, summary.get("State", "unknown"), created)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> "Record":
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        status = (attrs.get("State") or {}).get("Status", "unknown")
        # Inspect gives nanoseconds in UTC ("...T07:36:56.926870552Z"); keep the list's precision and form.
        created = attrs.get("Created", "")[:19] + "+00:00" if attrs.get("Created") else ""
        return cls(attrs["Id"], attrs.get("Name", "").lstrip("/"), labels, status, created)

    @property
    def managed(self) -> bool:
        return self.labels.get(MANAGED_BY) == MANAGER

    @property
    def dedicated(self) -> bool:
        return bool(self.labels.get(CPUS))


def record_key_material(record: Record) -> Optional[str]:
    """The material of a managed instance's key label; None without one, or for a label
    that is not a valid key (a hand-edited label never reaches sshd)."""
    key = record.labels.get(PUBLIC_KEY)
    if not record.managed or not key:
        return None
    try:
        return key_material(validate_public_key(key))
    except InvalidInput:
        return None


def key_owners(keyed: Iterable[tuple[Record, str]]) -> dict[str, str]:
    """Each key material -> the client whose instance first carried it, from
    (record, material) pairs.

    Creation refuses a key another client already uses, so there is one owner per
    key; for instances older than that rule, the first owner keeps the key."""
    owners: dict[str, str] = {}
    for record, material in sorted(keyed, key=lambda pair: pair[0].created):
        owners.setdefault(material, record.labels.get(OWNER, ""))
    return owners


def keyed_records(records: Iterable[Record]) -> list[tuple[Record, str]]:
    """(record, key material) for the instances that carry a valid key, each key parsed once."""
    return [(r, m) for r in records if (m := record_key_material(r)) is not None]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def spec_labels(spec: InstanceSpec) -> dict[str, str]:
    """The labels that record the request, in one normalised text form."""
    return {label: _text(getattr(spec, attr)) for attr, label in SPEC_LABELS.items()}


def instance_labels(
    spec: InstanceSpec, ports: list[PublishedPort], cpuset: Optional[str], origin: str = "ansible"
) -> dict[str, str]:
    labels = {MANAGED_BY: MANAGER, NAME: spec.name, ORIGIN: origin,
              PORTS: json.dumps([asdict(p) for p in ports], separators=(",", ":"))}
    labels.update(spec_labels(spec))
    if spec.cpus is not None and cpuset:
        labels[CPUSET] = cpuset  # dedicated cores are fixed for life; shared cpusets follow the pool
    return labels


def published_ports(labels: dict[str, str]) -> list[PublishedPort]:
    try:
        return [PublishedPort(**p) for p in json.loads(labels.get(PORTS, "[]"))]
    except (TypeError, ValueError):
        return []


def dedicated_cpus(labels: dict[str, str]) -> set[int]:
    """The CPUs a dockpool instance holds for itself (empty for shared instances)."""
    if not labels.get(CPUS) or not labels.get(CPUSET):
        return set()
    return set(parse_cpulist(labels[CPUSET]))


def bound_host_ports(attrs: dict[str, Any]) -> set[int]:
    """Every host port a container has claimed, from a full inspect."""
    bindings = (attrs.get("HostConfig") or {}).get("PortBindings") or {}
    return {
        int(entry["HostPort"])
        for entries in bindings.values()
        for entry in entries or []
        if str(entry.get("HostPort", "")).isdigit()
    }


def _int_or_none(value: Optional[str]) -> Optional[int]:
    return int(value) if value not in (None, "") else None


def _float_or_none(value: Optional[str]) -> Optional[float]:
    return float(value) if value not in (None, "") else None


_STATES = {"running": "running", "exited": "stopped", "created": "stopped"}


def instance_view(record: Record, ssh_host: str, shared_cpuset: str) -> dict[str, Any]:
    """The public description of an instance, from its labels and state alone."""
    labels = record.labels
    ports = published_ports(labels)
    ssh_port = next((p for p in ports if p.container_port == 22 and p.protocol == "tcp"), None)
    user = labels.get(SSH_USER, "root")
    key = record_key_material(record)
    return {
        "id": record.id,
        "name": labels.get(NAME, record.name),
        "owner": labels.get(OWNER),
        "image": labels.get(IMAGE),
        "state": _STATES.get(record.status, record.status),
        "status": record.status,
        "created": record.created,
        "gpu": labels.get(GPU) == "true",
        "runtime": labels.get(RUNTIME) or "runc",  # instances older than the label all ran under runc
        "replica": labels.get(REPLICA) == "true",
        "ssh": None
        if ssh_port is None
        else {
            "user": user,
            "host": ssh_host,
            "port": ssh_port.host_port,
            "command": f"ssh -p {ssh_port.host_port} {user}@{ssh_host}",
            # Which of the client's keys logs in (as `ssh-keygen -l` prints it), so a client can tell.
            "key_fingerprint": key_fingerprint(key) if key else None,
        },
        "ports": [asdict(p) for p in ports],
        "desktop": desktop_view(ports, ssh_host),
        "limits": {
            "cpus": _int_or_none(labels.get(CPUS)),
            "cpuset": labels.get(CPUSET) if record.dedicated else shared_cpuset,
            "cpu_share": _float_or_none(labels.get(CPU_SHARE)),
            "memory": _int_or_none(labels.get(MEMORY)),
            "memory_reservation": _int_or_none(labels.get(MEMORY_RESERVATION)),
            "disk_limit": _int_or_none(labels.get(DISK_LIMIT)),
            # Instances older than the label were all left to the watchdog.
            "disk_enforcement": labels.get(DISK_ENFORCEMENT, "watchdog") if labels.get(DISK_LIMIT) else None,
            "pids_limit": _int_or_none(labels.get(PIDS_LIMIT)),
        },
    }

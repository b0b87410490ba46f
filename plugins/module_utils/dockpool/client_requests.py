"""What a client may ask of a provider, and how a client's request becomes an instance.

The provider sets defaults and maxima per instance; the IaaS Docker rule decides
memory: the client's ask is the soft reservation, the provider's cap the hard
limit. Instance names are ``<client>-<provider>-<n>`` unless the client names it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from .errors import CapacityExhausted, InvalidInput
from .placement import MIN_MEMORY
from .units import format_size, parse_size
from .validation import validate_name, whole_number

MAX_COUNT = 1000  # no count a client sends is larger; the provider's own limits are far lower
_FIELDS = ("image", "public_key", "extra_ports", "gpu", "cpus", "memory", "disk_limit", "name")


@dataclass(frozen=True)
class ClientLimits:
    """Per-instance defaults and maxima for API clients (sizes in bytes)."""

    default_memory: int = 1024**3
    max_memory: int = 4 * 1024**3
    default_disk_limit: Optional[int] = 10 * 1024**3
    max_disk_limit: Optional[int] = 50 * 1024**3
    default_cpu_share: float = 1.0
    max_cpus: int = 2
    max_extra_ports: int = 8
    instances_per_client: int = 5

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "ClientLimits":
        values = dict(settings)
        for key in ("default_memory", "max_memory", "default_disk_limit", "max_disk_limit"):
            if key in values:
                values[key] = parse_size(values[key], key)
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise InvalidInput(f"unknown instance limits: {', '.join(unknown)}", unknown[0])
        limits = cls(**values)
        if limits.default_memory > limits.max_memory:
            raise InvalidInput("default_memory is above max_memory", "default_memory")
        return limits


def _check_max(value: Optional[int], maximum: Optional[int], field: str) -> None:
    if value is not None and maximum is not None and value > maximum:
        raise InvalidInput(
            f"{field}: {format_size(value)} is more than this provider allows ({format_size(maximum)})",
            field,
            {"max": maximum},
        )


def instance_name(client: str, provider: str, wanted: Optional[str], taken: Iterable[str]) -> str:
    """The client's name prefixed with the client's own, or the lowest free ``<client>-<provider>-<n>``."""
    if wanted is not None and not isinstance(wanted, str):
        raise InvalidInput(f"name: expected text, got {type(wanted).__name__}", "name")
    if wanted:
        name = wanted if wanted.startswith(f"{client}-") else f"{client}-{wanted}"
        return validate_name(name, "name")
    used = set(taken)
    pattern = re.compile(rf"^{re.escape(client)}-{re.escape(provider)}-(\d+)$")
    numbers = {int(m.group(1)) for m in map(pattern.match, used) if m}
    n = 1
    while n in numbers:
        n += 1
    return validate_name(f"{client}-{provider}-{n}", "name")


def check_instance_cap(owned: int, limits: ClientLimits) -> None:
    if owned >= limits.instances_per_client:
        raise CapacityExhausted(
            f"you already have {owned} instances, the most this provider allows per client; remove one first",
            "instances",
            {"max": limits.instances_per_client},
        )


def client_params(body: Any, client: str, limits: ClientLimits, owned: int, ceiling: int) -> dict[str, Any]:
    """Turn a client's request body into dockpool_container parameters (without the name).

    ``ceiling`` is the most memory an instance may have whatever the API allows:
    the host's RAM, or less when the provider's policy caps it."""
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object", "body")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; allowed: {', '.join(_FIELDS)}", unknown[0])
    check_instance_cap(owned, limits)  # early; the creation checks again under the placement lock
    if not body.get("public_key"):
        raise InvalidInput("public_key: your OpenSSH public key is required to log in to the instance", "public_key")
    cap = min(limits.max_memory, ceiling)
    asked_memory = parse_size(body.get("memory"), "memory") or min(limits.default_memory, cap)
    _check_max(asked_memory, cap, "memory")
    if asked_memory < MIN_MEMORY:
        raise InvalidInput(f"memory: at least {format_size(MIN_MEMORY)} (Docker's floor), got {format_size(asked_memory)}",
                           "memory", {"min": MIN_MEMORY})
    disk_limit = parse_size(body.get("disk_limit"), "disk_limit") or limits.default_disk_limit
    _check_max(disk_limit, limits.max_disk_limit, "disk_limit")
    # Counts are parsed once, here, and the parsed numbers are what the limits see and what is passed on.
    cpus = None if body.get("cpus") is None else whole_number(body["cpus"], "cpus", 1, MAX_COUNT)
    if cpus is not None and cpus > limits.max_cpus:
        raise InvalidInput(f"cpus: at most {limits.max_cpus} dedicated cores per instance here", "cpus", {"max": limits.max_cpus})
    extra = whole_number(body.get("extra_ports") or 0, "extra_ports", 0, MAX_COUNT)
    if extra > limits.max_extra_ports:
        raise InvalidInput(
            f"extra_ports: at most {limits.max_extra_ports} per instance here", "extra_ports", {"max": limits.max_extra_ports}
        )
    return {
        "image": body.get("image"),
        "public_key": body.get("public_key"),
        "extra_ports": extra,
        "gpu": body.get("gpu", False),
        "cpus": cpus,
        "cpu_share": None if cpus is not None else limits.default_cpu_share,
        "memory": cap,  # hard: the provider's cap
        "memory_reservation": asked_memory,  # soft: what the client asked for
        "disk_limit": disk_limit,
        "owner": client,
    }

"""What a client may send a provider, and what becomes of its instance's name.

The fields and their parsing are the create request's (spec.py); the limits are the
provider's, as the client's narrow them (limits.py). Instance names are
``<client>-<provider>-<n>`` unless the client names it.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from .errors import CapacityExhausted, InvalidInput
from .limits import Limits
from .spec import CLIENT_FIELDS
from .validation import validate_name


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


def check_instance_cap(owned: int, limits: Limits) -> None:
    if owned >= limits.instances_per_client:
        raise CapacityExhausted(
            f"you already have {owned} instances, the most this provider allows per client; remove one first",
            "instances",
            {"max": limits.instances_per_client},
        )


def client_request(body: Any) -> dict[str, Any]:
    """A client's request body, in its shape: an object of the fields a client may send, with a key."""
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object", "body")
    unknown = sorted(set(body) - set(CLIENT_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; allowed: {', '.join(CLIENT_FIELDS)}", unknown[0])
    if not body.get("public_key"):
        raise InvalidInput("public_key: your OpenSSH public key is required to log in to the instance", "public_key")
    return dict(body)


def move_request(view: dict[str, Any], public_key: str) -> dict[str, Any]:
    """The create request a target is asked about for an instance (its view, as labels.instance_view
    gives it): its image and limits as the client asked them. The memory asked is the reservation;
    the hard limit is the target's own cap (spec.py)."""
    limits = view["limits"]
    body: dict[str, Any] = {"image": view["image"], "public_key": public_key,
                            "memory_reservation": str(limits["memory_reservation"]),
                            "extra_ports": sum(1 for p in view["ports"] if p["name"].startswith("extra-"))}
    if limits.get("cpus"):
        body["cpus"] = limits["cpus"]
    if limits.get("disk_limit"):
        body["disk_limit"] = str(limits["disk_limit"])
    for flag in ("gpu", "replica"):
        if view.get(flag):
            body[flag] = True
    return body

"""GET /: the provider's status page, rendered by Jinja2 from the same data as the JSON routes."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from jinja2 import Environment, FileSystemLoader, select_autoescape

from dockpool.units import human_size

from .config import Client

REFRESH_SECONDS = 15


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = human_size
    return env


_ENV = _environment()


def capacity(views: list[dict[str, Any]], specs: dict[str, Any]) -> dict[str, Any]:
    """What the instances hold of the machine: dedicated cores and the memory clients reserved."""
    cores = sum(v["limits"].get("cpus") or 0 for v in views)
    memory = sum(v["limits"].get("memory_reservation") or 0 for v in views)
    running = sum(1 for v in views if v["state"] == "running")
    return {
        "running": running,
        "stopped": len(views) - running,
        "dedicated_cores": cores,
        "cores_percent": min(100, round(100 * cores / max(1, specs["cpu"]["logical_cpus"]))),
        "memory_reserved": memory,
        "memory_percent": min(100, round(100 * memory / max(1, specs["memory"]["total"]))),
    }


def render(*, provider: str, version: str, specs: dict[str, Any], views: Optional[list[dict[str, Any]]],
           client: Optional[Client], own: dict[str, Any], fleet: dict[str, Any], notice: str = "",
           usage: Optional[dict[str, Any]] = None) -> str:
    """``views`` is every instance (None when the engine is unreachable); a client sees only its own.
    ``own`` is this provider's peer entry, ``fleet`` what GET /v1/fleet answers, ``usage`` what
    GET /v1/usage answers the client (its chart: CPU hours per instance)."""
    everything = views or []
    mine = [v for v in everything if client is not None and v["owner"] == client.name]
    return _ENV.get_template("status.html").render(
        provider=provider, version=version, specs=specs, engine=views is not None, capacity=capacity(everything, specs),
        client=client.name if client else None, instances=mine, own=own, fleet=fleet, notice=notice, usage=usage,
        refresh=REFRESH_SECONDS, now=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
    )

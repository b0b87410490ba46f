"""Disk usage of instances: measure every writable layer in one engine call, add what
files deleted but still open hold (deleted_files.py) and the files Docker keeps for each
instance outside its layer but writable from inside (/etc/hosts, /etc/hostname,
/etc/resolv.conf: bind mounts of files in the engine's folder), stop (never remove) the running
instances over their own ``disk_limit`` label, and publish the figures for the API
in one atomically written JSON file."""
from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Any, Optional

from .atomicfile import read_json, write_json
from .deleted_files import NotPermitted, held_by_deleted_files
from .engine import engine_errors
from .errors import DockpoolError
from .host_specs import DEFAULT_DATA_ROOT
from .labels import DISK_LIMIT, MANAGED_FILTER, NAME, OWNER, Record

DEFAULT_USAGE_FILE = "/var/lib/dockpool/usage.json"
HOST_FILES = ("hosts", "hostname", "resolv.conf")  # in <DockerRootDir>/containers/<id>/
log = logging.getLogger("dockpool.watchdog")


def _held_hidden(summaries: list[dict[str, Any]]) -> dict[str, int]:
    running = [s["Id"] for s in summaries if s.get("State") == "running"]
    try:
        return held_by_deleted_files(running)
    except NotPermitted:
        log.warning("cannot look at the instances' open files (run the watchdog as root): "
                    "space held by deleted files that are still open is not counted")
        return {}


def _host_files(client: Any, summaries: list[dict[str, Any]]) -> dict[str, int]:
    """Bytes in each instance's /etc/hosts and siblings, which Docker keeps beside the layer."""
    if not summaries:
        return {}
    with engine_errors("reading the engine's data root"):
        root = client.info().get("DockerRootDir") or DEFAULT_DATA_ROOT
    sizes: dict[str, int] = {}
    for summary in summaries:
        total = 0
        for name in HOST_FILES:
            try:
                total += os.stat(os.path.join(root, "containers", summary["Id"], name)).st_size
            except FileNotFoundError:
                pass
            except PermissionError:  # the API's account: the watchdog (root) counts them
                return {}
        sizes[summary["Id"]] = total
    return sizes


def measure(client: Any, filters: Optional[dict[str, Any]] = None) -> list[dict[str, Any]]:
    """Size of each dockpool instance's writable layer (the list endpoint computes SizeRw itself)
    plus the space its deleted but open files and its /etc/hosts and siblings hold; ``filters``
    narrow the instances."""
    with engine_errors("measuring instance disk usage"):
        summaries = client.api.containers(all=True, size=True, filters={"label": MANAGED_FILTER, **(filters or {})})
    hidden = _held_hidden(summaries)
    host_files = _host_files(client, summaries)
    entries = []
    for summary in summaries:
        record = Record.from_summary(summary)
        limit = record.labels.get(DISK_LIMIT)
        entries.append(
            {
                "id": record.id,
                "name": record.labels.get(NAME, record.name),
                "owner": record.labels.get(OWNER),
                "state": record.status,
                "size_rw": int(summary.get("SizeRw") or 0),
                "size_deleted_open": hidden.get(record.id, 0),
                "size_host_files": host_files.get(record.id, 0),
                "disk_limit": int(limit) if limit and limit.isdigit() else None,
            }
        )
    return entries


def over_limit(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Running instances whose writable layer exceeds their own limit."""
    return [e for e in entries if e["state"] == "running" and is_over(e)]


def is_over(entry: dict[str, Any]) -> bool:
    """Does what the instance holds on disk, visible or not, exceed its limit?"""
    return entry["disk_limit"] is not None and held(entry) > entry["disk_limit"]


def held(entry: dict[str, Any]) -> int:
    """Everything an instance holds on the provider's disk."""
    return entry["size_rw"] + entry["size_deleted_open"] + entry.get("size_host_files", 0)


def run_pass(client: Any, usage_file: str = DEFAULT_USAGE_FILE, stop_timeout: int = 10) -> dict[str, Any]:
    """One watchdog pass; returns the report it also writes to ``usage_file``."""
    entries = measure(client)
    for entry in over_limit(entries):
        try:
            with engine_errors(f"stopping {entry['name']}"):
                client.api.stop(entry["id"], timeout=stop_timeout)
        except DockpoolError as exc:
            entry["action"] = f"stop failed: {exc.message}"
            log.error("%s holds %d bytes, over its limit of %d, but could not be stopped: %s",
                      entry["name"], held(entry), entry["disk_limit"], exc.message)
            continue
        entry["action"] = "stopped"
        entry["state"] = "exited"
        log.warning("stopped %s (owner %s): writable layer %d bytes, deleted open files %d bytes and /etc/hosts and "
                    "siblings %d bytes are over its disk limit of %d bytes", entry["name"], entry["owner"],
                    entry["size_rw"], entry["size_deleted_open"], entry["size_host_files"], entry["disk_limit"])
    report = {
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "instances": {e["name"]: e for e in entries},
    }
    write_json(usage_file, report)
    log.info("measured %d instances, stopped %d", len(entries), sum(1 for e in entries if e.get("action") == "stopped"))
    return report


def usage_readable(usage_file: str = DEFAULT_USAGE_FILE) -> bool:
    """False only for a file that exists and cannot be read as a report."""
    return not os.path.exists(usage_file) or read_usage(usage_file) is not None


def read_usage(usage_file: str = DEFAULT_USAGE_FILE) -> Optional[dict[str, Any]]:
    """The last report, or None when it is missing or unreadable (logged: the next pass rewrites it)."""
    try:
        data = read_json(usage_file)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("ignoring unreadable usage file %s: %s", usage_file, exc)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("instances"), dict):
        log.error("ignoring usage file %s: not a usage report", usage_file)
        return None
    return data

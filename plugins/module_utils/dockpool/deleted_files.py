"""Disk space that an instance holds in files it deleted while keeping them open.

Such a file has no name left, so Docker's size of the writable layer (a walk of its
directory tree) does not count it, yet its blocks stay taken until the last process
closes it: a way around the disk limit. The kernel still shows each open file under
``/proc/PID/fd``; this reads, for the processes of the given containers, the open
files marked "(deleted)" that live on the container's own root filesystem (not its
tmpfs mounts, which count against memory) and adds up their allocated blocks.

Reading another user's ``/proc/PID/fd`` takes root: the watchdog runs as root.
"""
from __future__ import annotations

import logging
import os
import re
import stat
from typing import Iterable, Optional

from .cgroups import pids_of

log = logging.getLogger("dockpool.watchdog")
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


class NotPermitted(Exception):
    """The caller may not look at the instances' processes (it is not root)."""


def _container_of(pid_dir: str, wanted: set[str]) -> Optional[str]:
    try:
        with open(os.path.join(pid_dir, "cgroup"), encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None  # the process ended meanwhile
    return next((m.group(0) for m in _CONTAINER_ID.finditer(text) if m.group(0) in wanted), None)


def _deleted_open_files(pid_dir: str) -> dict[tuple[int, int], int]:
    """(device, inode) -> allocated bytes of the deleted regular files this process holds on its root fs."""
    found: dict[tuple[int, int], int] = {}
    try:
        root_device = os.stat(os.path.join(pid_dir, "root")).st_dev
        entries = list(os.scandir(os.path.join(pid_dir, "fd")))
    except PermissionError as exc:
        raise NotPermitted(str(exc)) from None
    except OSError:
        return found
    for entry in entries:
        try:
            if not os.readlink(entry.path).endswith(" (deleted)"):
                continue
            info = os.stat(entry.path)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_dev == root_device:
            found[(info.st_dev, info.st_ino)] = info.st_blocks * 512
    return found


def held_by_deleted_files(container_ids: Iterable[str], proc: str = "/proc") -> dict[str, int]:
    """Container id -> bytes held by files its processes deleted but keep open. Each
    container's processes come from its cgroup; where its cgroup is not found, one pass
    over /proc finds them. Raises NotPermitted when they cannot be inspected."""
    per_container: dict[str, dict[tuple[int, int], int]] = {}
    unplaced: set[str] = set()
    for container in set(container_ids):
        pids = pids_of(container)
        if pids is None:
            unplaced.add(container)
            continue
        files = per_container.setdefault(container, {})
        for pid in pids:
            files.update(_deleted_open_files(os.path.join(proc, pid)))
    if unplaced:
        for entry in os.scandir(proc):
            if entry.name.isdigit():
                owner = _container_of(entry.path, unplaced)
                if owner is not None:
                    per_container.setdefault(owner, {}).update(_deleted_open_files(entry.path))
    return {container: sum(files.values()) for container, files in per_container.items()}

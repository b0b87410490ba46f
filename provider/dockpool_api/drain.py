"""Whether this provider is draining: its owner is taking the machine back, so it takes no new
instance (created or moved in) and the fleet shows it; and where its drained instances went,
so that their clients follow them.

The state is a file in the provider's state folder, so that it survives restarts and an
operator's play can set it as any other file (``{"draining": true, "since": ...}``; absent:
not draining). ``moved`` maps each instance a drain moved to where it went, and outlives the
drain. The service reads the file again whenever it changed, at most once per call.
"""
from __future__ import annotations

import os
import threading
from datetime import datetime, timezone
from typing import Any, Optional

from dockpool.atomicfile import read_json, write_json
from dockpool.errors import InvalidInput


class Drain:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # one read-change-write at a time (the drain moves two at once)
        self._seen: Optional[float] = None  # the file's modification time when last read
        self._state: dict[str, Any] = _absent()

    def state(self) -> dict[str, Any]:
        """``{"draining": bool, "since": ISO time or None, "moved": {name: where}}``, from the file as it is now."""
        try:
            changed: Optional[float] = os.stat(self.path).st_mtime
        except FileNotFoundError:
            changed = None
        with self._lock:
            if changed != self._seen:
                self._state = _read(self.path) if changed is not None else _absent()
                self._seen = changed
            return dict(self._state)

    def draining(self) -> bool:
        return bool(self.state()["draining"])

    def shown(self) -> dict[str, Any]:
        """The state as ``GET /v1/drain`` shows it: where the instances went is their owners' business."""
        state = self.state()
        return {"draining": state["draining"], "since": state["since"]}

    def set(self, draining: bool) -> dict[str, Any]:
        """Start or end the drain; the time it started is kept while it lasts."""
        with self._writing:
            current = self.state()
            since = current["since"] if current["draining"] and draining else None
            if draining and since is None:
                since = datetime.now(timezone.utc).isoformat(timespec="seconds")
            write_json(self.path, {**current, "draining": draining, "since": since})
        return self.shown()

    def record_move(self, name: str, owner: str, provider: str, address: str, new_name: str) -> None:
        """Remember that the drain moved ``name`` (``owner``'s) to ``new_name`` on ``provider`` (at ``address``)."""
        with self._writing:
            current = self.state()
            moved = {**current["moved"], name: {"owner": owner, "provider": provider, "address": address,
                                                "name": new_name}}
            write_json(self.path, {**current, "moved": moved})

    def moved_to(self, name: str) -> Optional[dict[str, Any]]:
        """Where a drain moved the instance ``name``, or None."""
        return self.state()["moved"].get(name)


def _absent() -> dict[str, Any]:
    """The state without a file: not draining, nothing moved."""
    return {"draining": False, "since": None, "moved": {}}


def _read(path: str) -> dict[str, Any]:
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: the drain state is unreadable ({exc}); remove it or write "
                           '{"draining": false}', "drain_file") from None
    if not isinstance(data, dict) or not isinstance(data.get("draining"), bool):
        raise InvalidInput(f'{path}: the drain state must be {{"draining": true or false}}', "drain_file")
    moved = data.get("moved") or {}
    if not isinstance(moved, dict) or not all(isinstance(v, dict) for v in moved.values()):
        raise InvalidInput(f"{path}: moved must map instance names to where they went", "drain_file")
    return {"draining": data["draining"], "since": data.get("since") if data["draining"] else None, "moved": moved}

"""Whether this provider is draining: its owner is taking the machine back, so it takes no new
instance (created or moved in) and the fleet shows it.

The state is a file in the provider's state folder, so that it survives restarts and an
operator's play can set it as any other file (``{"draining": true, "since": ...}``; absent:
not draining). The service reads it again whenever it changed, at most once per call.
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
        self._seen: Optional[float] = None  # the file's modification time when last read
        self._state: dict[str, Any] = {"draining": False, "since": None}

    def state(self) -> dict[str, Any]:
        """``{"draining": bool, "since": ISO time or None}``, from the file as it is now."""
        try:
            changed: Optional[float] = os.stat(self.path).st_mtime
        except FileNotFoundError:
            changed = None
        with self._lock:
            if changed != self._seen:
                self._state = _read(self.path) if changed is not None else {"draining": False, "since": None}
                self._seen = changed
            return dict(self._state)

    def draining(self) -> bool:
        return bool(self.state()["draining"])

    def set(self, draining: bool) -> dict[str, Any]:
        """Start or end the drain; the time it started is kept while it lasts."""
        current = self.state()
        since = current["since"] if current["draining"] and draining else None
        if draining and since is None:
            since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json(self.path, {"draining": draining, "since": since})
        return self.state()


def _read(path: str) -> dict[str, Any]:
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: the drain state is unreadable ({exc}); remove it or write "
                           '{"draining": false}', "drain_file") from None
    if not isinstance(data, dict) or not isinstance(data.get("draining"), bool):
        raise InvalidInput(f'{path}: the drain state must be {{"draining": true or false}}', "drain_file")
    return {"draining": data["draining"], "since": data.get("since") if data["draining"] else None}

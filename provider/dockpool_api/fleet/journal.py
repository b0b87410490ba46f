"""The moves this provider has under way or has taken in, kept on disk so that a provider killed
mid-move knows, when it starts again, which instance may be running elsewhere.

``out``: a move from here, written before the instance stops and removed once the move ended
either way. An entry left by a killed service is a move *in doubt*: its instance stays stopped
(nobody may start it) until the target says whether it took it (moves.py settles it).

``in``: a move this provider takes in, keyed by the source's export id, written before anything
of it exists here and completed (the instance's id) once the instance is created, before the
source hears of it. A completed entry is what this provider answers when the source asks, and
why an instance that landed stopped (never started, like a half-made creation) is kept at
start; what an incomplete one made is removed at start (the source still holds the instance).
"""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

from dockpool.atomicfile import read_json, write_json
from dockpool.errors import InvalidInput


class MoveJournal:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._data = _read(path)

    def begin(self, export_id: str, record_id: str, name: str, owner: str, target: str, was_running: bool) -> None:
        """A move of ``name`` (container ``record_id``) to ``target`` starts: before the instance stops."""
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._change("out", export_id, {"id": record_id, "name": name, "owner": owner, "target": target,
                                        "running": was_running, "since": since})

    def end(self, export_id: str) -> None:
        """The move ended (moved, or the instance is back as it was)."""
        self._change("out", export_id, None)

    def outgoing(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._data["out"])

    def held(self, container_id: str) -> Optional[dict[str, Any]]:
        """The unended move of this instance, if any: while there is one, it must not start here."""
        return next((m for m in self.outgoing().values() if m["id"] == container_id), None)

    def landing(self, export_id: str, source: str) -> None:
        """A move from ``source`` starts arriving: written before anything of it exists here."""
        self._change("in", export_id, {"id": "", "source": source, "name": ""})

    def landed(self, export_id: str, container_id: str, name: str) -> None:
        """The move created ``name`` here: written before the source is told."""
        with self._lock:
            entry = dict(self._data["in"][export_id])
        self._change("in", export_id, {**entry, "id": container_id, "name": name})

    def unland(self, export_id: str) -> None:
        """The move failed here: what it made is removed."""
        self._change("in", export_id, None)

    def landed_from(self, export_id: str, source: str) -> Optional[dict[str, Any]]:
        """The instance the export ``export_id`` of ``source`` became here, or None."""
        with self._lock:
            entry = self._data["in"].get(export_id)
        return entry if entry is not None and entry["id"] and entry["source"] == source else None

    def landed_ids(self) -> set[str]:
        with self._lock:
            return {entry["id"] for entry in self._data["in"].values() if entry["id"]}

    def unfinished_landings(self) -> list[str]:
        """The exports a killed service was taking in: what they made here was never the source's answer."""
        with self._lock:
            return [k for k, v in self._data["in"].items() if not v["id"]]

    def keep_landed(self, existing: Iterable[str]) -> None:
        """Forget the moves taken in whose instance is gone (removed, moved on, or never finished)."""
        alive = set(existing)
        with self._lock:
            kept = {k: v for k, v in self._data["in"].items() if v["id"] in alive}
            if len(kept) != len(self._data["in"]):
                self._data = {**self._data, "in": kept}
                write_json(self.path, self._data, mode=0o600)

    def _change(self, side: str, key: str, entry: Optional[dict[str, Any]]) -> None:
        with self._lock:
            entries = {k: v for k, v in self._data[side].items() if k != key}
            if entry is not None:
                entries[key] = entry
            self._data = {**self._data, side: entries}
            write_json(self.path, self._data, mode=0o600)  # durable before the engine is touched


def _read(path: str) -> dict[str, dict[str, dict[str, Any]]]:
    try:
        data = read_json(path)
    except FileNotFoundError:
        return {"out": {}, "in": {}}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: the moves journal is unreadable ({exc}); an instance it names may run on "
                           "another provider: check there before removing the file", "moves_file") from None
    if (not isinstance(data, dict) or not all(isinstance(data.get(side, {}), dict) for side in ("out", "in"))
            or not all(isinstance(v, dict) and isinstance(v.get("id"), str)
                       for side in ("out", "in") for v in data.get(side, {}).values())):
        raise InvalidInput(f'{path}: the moves journal must be {{"out": {{...}}, "in": {{...}}}}', "moves_file")
    return {"out": data.get("out", {}), "in": data.get("in", {})}

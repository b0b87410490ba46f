"""Whether this provider is draining: its owner is taking the machine back, so it takes no new
instance (created or moved in) and the fleet shows it; and where its drained instances went,
so that their clients follow them.

The state is a file in the provider's state folder, so that it survives restarts and an
operator's play can set it as any other file (``{"draining": true, "since": ...}``; absent:
not draining). ``moved`` maps each instance a drain moved to where it went, and outlives the
drain. The service reads the file again whenever it changed, at most once per call.

Draining a provider into its fleet: every instance moved to another member that takes it.

For each instance the provider asks the live members that are not draining, over the fleet's
mutual TLS and on the owner's behalf (``POST /v1/fleet/offers``: the target's own admission,
for a client who has an account there too), and moves it with the grant the first one gives,
as a client's move does (moves.py). A few move at once; a stopped instance moves and stays
stopped; one that fits nowhere stays here, as it was, and is reported with each reason.
"""
from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Optional, Protocol

from dockpool.atomicfile import read_json, write_json
from dockpool.client_requests import move_request
from dockpool.errors import Conflict, DockpoolError, InvalidInput
from dockpool.instances import InstanceManager
from dockpool.labels import OWNER, PUBLIC_KEY, Record

from ..config import Client
from .members import Member
from .metrics import FleetMetrics
from .moves import MoveInDoubt, Mover, error_of
from .transport import route_path

AT_ONCE = 2  # moves at once: each streams a whole filesystem through this provider's disk and network


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


class Here(Protocol):
    """What a drain needs of this provider besides the mover: its instances, and the members that take them."""

    def manager(self) -> InstanceManager: ...

    def takers(self) -> list[Member]: ...


def drain(state: Drain, mover: Mover, here: Here, events: FleetMetrics) -> dict[str, list[dict[str, Any]]]:
    """Move every instance here to other members; ``{"moved": [...], "stayed": [...]}``."""
    if not state.draining():
        raise Conflict("this provider is not draining: start the drain first (PUT /v1/drain), so that nothing "
                       "new arrives while its instances leave", "draining")
    with events.drain() as outcome:
        records = [r for r in here.manager().records() if r.managed]
        with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
            results = list(pool.map(lambda r: _move_one(mover, here, r), records))
        shown = {"moved": [r for r in results if "to" in r], "stayed": [r for r in results if "to" not in r]}
        outcome["stayed"] = len(shown["stayed"])
    return shown


def _move_one(mover: Mover, here: Here, record: Record) -> dict[str, Any]:
    owner = record.labels.get(OWNER, "")
    view = here.manager().view(record)
    running = record.status == "running"
    request = move_request(view, record.labels.get(PUBLIC_KEY, ""))
    reasons = []
    if mover.held(record.id):
        return {"name": record.name, "owner": owner, "reasons": [
            "an earlier move of it is in doubt: it stays stopped until that move's target says whether it took it"]}
    for target in here.takers():  # the live members that take instances (not draining)
        try:
            status, text = mover.ask_member(target, "POST", route_path("v1", "fleet", "offers"), "",
                                            {"client": owner, "request": request, "start": running}, timeout=60,
                                            most=1024**2)
        except OSError as exc:
            reasons.append(f"{target.name}: {exc}")
            continue
        if status != 201:
            reasons.append(f"{target.name}: {error_of(text)}")
            continue
        offer = json.loads(text)
        started = time.monotonic()
        try:
            moved = mover.transfer(Client(owner, ""), record, target, offer["id"], offer["grant"])
        except MoveInDoubt as exc:  # it may run there: no other member may get it too
            return {"name": record.name, "owner": owner, "reasons": reasons + [f"{target.name}: {exc.message}"]}
        except DockpoolError as exc:
            reasons.append(f"{target.name}: {exc.message}")
            continue
        return {"name": record.name, "owner": owner, "to": target.name, "as": moved["instance"]["name"],
                "state": "running" if running else "stopped",
                "cut_off_seconds": round(time.monotonic() - started, 1) if running else 0.0}
    return {"name": record.name, "owner": owner, "reasons": reasons or ["no other member of the fleet takes instances"]}

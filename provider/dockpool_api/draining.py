"""Draining a provider into its fleet: every instance moved to another member that takes it.

For each instance the provider asks the live members that are not draining, over the fleet's
mutual TLS and on the owner's behalf (``POST /v1/fleet/offers``: the target's own admission,
for a client who has an account there too), and moves it with the grant the first one gives,
as a client's move does (moving.py). A few move at once; a stopped instance moves and stays
stopped; one that fits nowhere stays here, as it was, and is reported with each reason.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dockpool.errors import Conflict, DockpoolError
from dockpool.labels import OWNER, PUBLIC_KEY, Record
from dockpool.moves import move_request

from . import fleet_tls
from .config import Client
from .moving import MoveInDoubt, Mover, error_of

AT_ONCE = 2  # moves at once: each streams a whole filesystem through this provider's disk and network


def drain(mover: Mover) -> dict[str, list[dict[str, Any]]]:
    """Move every instance here to other members; ``{"moved": [...], "stayed": [...]}``."""
    services = mover.services
    if not services.drain.draining():
        raise Conflict("this provider is not draining: start the drain first (PUT /v1/drain), so that nothing "
                       "new arrives while its instances leave", "draining")
    with services.events.drain() as outcome:
        records = [r for r in services.manager().records() if r.managed]
        with ThreadPoolExecutor(max_workers=AT_ONCE) as pool:
            results = list(pool.map(lambda r: _move_one(mover, r), records))
        shown = {"moved": [r for r in results if "to" in r], "stayed": [r for r in results if "to" not in r]}
        outcome["stayed"] = len(shown["stayed"])
    return shown


def _targets(mover: Mover) -> list[dict[str, Any]]:
    """The live members that take instances, as entries the mover can call."""
    return [entry for m in mover.services.takers() if (entry := mover.services.peers.member(m["name"])) is not None]


def _move_one(mover: Mover, record: Record) -> dict[str, Any]:
    owner = record.labels.get(OWNER, "")
    view = mover.services.manager().view(record)
    running = record.status == "running"
    request = move_request(view, record.labels.get(PUBLIC_KEY, ""))
    reasons = []
    if mover.held(record.id):
        return {"name": record.name, "owner": owner, "reasons": [
            "an earlier move of it is in doubt: it stays stopped until that move's target says whether it took it"]}
    for target in _targets(mover):
        try:
            status, text = mover.ask_member(target, "POST", fleet_tls.route_path("v1", "fleet", "offers"), "",
                                            {"client": owner, "request": request, "start": running}, timeout=60,
                                            most=1024**2)
        except OSError as exc:
            reasons.append(f"{target['Name']}: {exc}")
            continue
        if status != 201:
            reasons.append(f"{target['Name']}: {error_of(text)}")
            continue
        offer = json.loads(text)
        started = time.monotonic()
        try:
            moved = mover.transfer(Client(owner, ""), record, target, offer["id"], offer["grant"])
        except MoveInDoubt as exc:  # it may run there: no other member may get it too
            return {"name": record.name, "owner": owner, "reasons": reasons + [f"{target['Name']}: {exc.message}"]}
        except DockpoolError as exc:
            reasons.append(f"{target['Name']}: {exc.message}")
            continue
        return {"name": record.name, "owner": owner, "to": target["Name"], "as": moved["instance"]["name"],
                "state": "running" if running else "stopped",
                "cut_off_seconds": round(time.monotonic() - started, 1) if running else 0.0}
    return {"name": record.name, "owner": owner, "reasons": reasons or ["no other member of the fleet takes instances"]}

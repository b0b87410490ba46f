"""Startup recovery: what a service stopped or killed part-way left behind, settled before it serves.

In order: instances of moves cut short while they arrived (their source still holds them);
instances created but never started (a whole instance a move brought stopped is kept); the
jump account's keys; snapshot images of unfinished moves; the move journal's record of what
landed; replica refreshes cut short at this holder (the replicas stay as they were before
them); the fencing of replicated instances that may have been restored elsewhere meanwhile;
and the usage report, rebuilt by a watchdog pass if it is unreadable. Each step logs what it
did; one that fails is logged and the service starts anyway, as before.
"""
from __future__ import annotations

import logging
from typing import Callable, Protocol

from dockpool import snapshots
from dockpool.errors import DockpoolError
from dockpool.instances import InstanceManager
from dockpool.usage import run_pass, usage_readable

from .fleet.journal import MoveJournal
from .fleet.store import ReplicaStore

log = logging.getLogger("dockpool.api")


class Landings(Protocol):
    """The mover, as recovery sees it: what it was taking in when the service stopped."""

    def forget_unfinished_landings(self) -> int: ...


class Fencing(Protocol):
    """The sender's replicas, as recovery sees them: instances a holder may have restored meanwhile."""

    def fence(self) -> list[str]: ...


def recover(manager: Callable[[], InstanceManager], landings: Landings, journal: MoveJournal, store: ReplicaStore,
            fencing: Fencing, usage_file: str) -> None:
    """Every step, once, at start (before the listeners bind). ``manager`` gives the engine's
    client when first needed: an engine that does not answer is one more logged failure."""
    try:
        _instances(manager(), landings, journal)
    except DockpoolError as exc:
        log.error("could not check for half-made instances: %s", exc.message)
    store.sweep()
    try:
        fencing.fence()  # before serving: an instance restored elsewhere must not run here meanwhile
    except DockpoolError as exc:
        log.error("could not fence the replicated instances: %s", exc.message)
    rebuild_usage(manager, usage_file)


def _instances(manager: InstanceManager, landings: Landings, journal: MoveJournal) -> None:
    unfinished = landings.forget_unfinished_landings()
    if unfinished:
        log.warning("removed %d instances of moves cut short while they arrived", unfinished)
    removed = manager.remove_unstarted("api", keep=journal.landed_ids())
    if removed:
        log.warning("removed %d half-made instances left by an earlier run: %s", len(removed), ", ".join(removed))
    manager.refresh_jump_keys()  # whatever changed while the service was down
    swept = snapshots.sweep(manager.client)  # snapshots of moves cut short by a stop
    if swept:
        log.warning("removed %d snapshot images of unfinished moves", len(swept))
    journal.keep_landed(r.id for r in manager.records())


def rebuild_usage(manager: Callable[[], InstanceManager], usage_file: str) -> None:
    """A corrupt usage report is rewritten at once by a watchdog pass, not left for cron."""
    if usage_readable(usage_file):
        return
    log.error("usage file %s is unreadable; rebuilding it with a watchdog pass", usage_file)
    try:
        run_pass(manager().client, usage_file)
    except (DockpoolError, OSError) as exc:
        log.error("could not rebuild %s: %s", usage_file, getattr(exc, "message", exc))

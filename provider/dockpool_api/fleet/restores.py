"""Restore after a sudden stop: a client starts her instance on the member that holds its replica
(store.py), once its own provider has expired from the fleet.

The fleet's membership is the only judge of "gone": while the provider is a live member, its
instance may still run there, and a restore would make two copies; it is refused. The restored
instance is made as a move's target makes one (Mover.land: the holder's own image settings,
the same admission as a create, journaled), from the replica merged into one archive, with the
name, key and limits it had; then the replica is marked restored, which is what its provider,
back in the fleet, learns from its holder before it runs its old copy (replicas.py).
"""
from __future__ import annotations

import secrets
import tempfile
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from dockpool import snapshots
from dockpool.errors import Conflict, NotFound

from ..config import Client
from ..services import Services


def restore(services: Services, client: Client, source: str, name: str) -> dict[str, Any]:
    lock = services.replicas.lock(f"restore {source}/{name}")
    if not lock.acquire(blocking=False):
        raise Conflict(f"{name} is being restored here already", "instance")
    try:
        return _restore(services, client, source, name)
    finally:
        lock.release()


def _restore(services: Services, client: Client, source: str, name: str) -> dict[str, Any]:
    store = services.store
    chain = store.chain(source, name)  # the names are checked here
    instance = (chain or {}).get("instance") or {}
    if chain is None or not (client.admin or instance.get("owner") == client.name):
        raise NotFound(f"no replica of {name} from {source} is held here", "instance")
    if chain.get("restored"):
        raise Conflict(f"{name} was restored here already, as {chain['restored']['as']}", "instance",
                       {"restored": chain["restored"]})
    if services.peers.member(source) is not None:
        raise Conflict(f"{source} is a live member of the fleet: {name} may still run there, and a restore would make "
                       "two copies; restore once the fleet has expired it (peer_expiry)", "provider",
                       {"live": True})
    services.check_taking()
    owner = next((c for c in services.config.clients if c.name == instance["owner"]), None)
    if owner is None:
        raise NotFound(f"client {instance['owner']!r} has no account on {services.config.provider_name}", "client")
    services.budgets.check(owner, f"restoring {name}")  # spent anywhere in the fleet: not run again here
    spec, admit = services.admission(owner, {**instance["request"], "name": name})
    restore_id = secrets.token_hex(8)

    @contextmanager
    def merged() -> Iterator[Iterable[bytes]]:
        with tempfile.TemporaryFile(dir=store.directory) as archive:
            store.merged(source, name, archive)
            archive.seek(0)
            yield iter(lambda: archive.read(snapshots.CHUNK), b"")

    view = services.mover.land(restore_id, source, snapshots.snapshot_ref(name, restore_id), merged, spec, admit,
                               bool(instance["running"]))
    store.mark_restored(source, name, view["name"])
    return services.client_view(view, None)

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
import threading
from contextlib import contextmanager
from typing import Any, Callable, ContextManager, Iterable, Iterator, Optional, Protocol

from dockpool import snapshots
from dockpool.errors import Conflict, NotFound
from dockpool.labels import Record
from dockpool.spec import InstanceSpec

from ..config import Client
from .members import Member
from .store import ReplicaStore

Admit = Callable[[InstanceSpec, list[Record]], InstanceSpec]
Land = Callable[[str, str, str, Callable[[], ContextManager[Iterable[bytes]]], InstanceSpec, Admit, bool],
                dict[str, Any]]


class RestoreSide(Protocol):
    """What a restore needs of this provider's instance side (instance_side.InstanceSide is it)."""

    def check_taking(self) -> None: ...

    def client_named(self, name: str) -> Optional[Client]: ...

    def admission(self, client: Client, body: Any) -> tuple[InstanceSpec, Admit]: ...

    def client_view(self, view: dict[str, Any], usage: Optional[dict]) -> dict[str, Any]: ...


class Restorer:
    def __init__(self, provider_name: str, store: ReplicaStore, side: RestoreSide,
                 member: Callable[[str], Optional[Member]], lock: Callable[[str], threading.Lock],
                 check_budget: Callable[[Client, str], None], land: Land) -> None:
        """``member``: a live member of the fleet by name; ``lock``: the Replicator's lock by name;
        ``check_budget``: Budgets.check; ``land``: Mover.land, the one way an instance is made from
        another provider's filesystem."""
        self.provider_name, self.store, self.side = provider_name, store, side
        self.member, self.lock, self.check_budget, self.land = member, lock, check_budget, land

    def restore(self, client: Client, source: str, name: str) -> dict[str, Any]:
        lock = self.lock(f"restore {source}/{name}")
        if not lock.acquire(blocking=False):
            raise Conflict(f"{name} is being restored here already", "instance")
        try:
            return self._restore(client, source, name)
        finally:
            lock.release()

    def _restore(self, client: Client, source: str, name: str) -> dict[str, Any]:
        store = self.store
        chain = store.chain(source, name)  # the names are checked here
        instance = (chain or {}).get("instance") or {}
        if chain is None or not (client.admin or instance.get("owner") == client.name):
            raise NotFound(f"no replica of {name} from {source} is held here", "instance")
        if chain.get("restored"):
            raise Conflict(f"{name} was restored here already, as {chain['restored']['as']}", "instance",
                           {"restored": chain["restored"]})
        if self.member(source) is not None:
            raise Conflict(f"{source} is a live member of the fleet: {name} may still run there, and a restore would "
                           "make two copies; restore once the fleet has expired it (peer_expiry)", "provider",
                           {"live": True})
        self.side.check_taking()
        owner = self.side.client_named(instance["owner"])
        if owner is None:
            raise NotFound(f"client {instance['owner']!r} has no account on {self.provider_name}", "client")
        self.check_budget(owner, f"restoring {name}")  # spent anywhere in the fleet: not run again here
        spec, admit = self.side.admission(owner, {**instance["request"], "name": name})
        restore_id = secrets.token_hex(8)

        @contextmanager
        def merged() -> Iterator[Iterable[bytes]]:
            with tempfile.TemporaryFile(dir=store.directory) as archive:
                store.merged(source, name, archive)
                archive.seek(0)
                yield iter(lambda: archive.read(snapshots.CHUNK), b"")

        view = self.land(restore_id, source, snapshots.snapshot_ref(name, restore_id), merged, spec, admit,
                         bool(instance["running"]))
        store.mark_restored(source, name, view["name"])
        return self.side.client_view(view, None)

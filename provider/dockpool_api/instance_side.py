"""The instance side of a provider: what the routes call to list, create, start, stop and remove
a client's instances, and what the fleet's parts (moves, replicas, restores) use of it.

It holds no fleet part: the composition root (wiring.py) adds what those parts need it to ask
before a start (``start_guards``: a move in progress, a fenced replica) and what they must hear
of an instance removed (``on_removed``: its replica at the holder goes too)."""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any, Callable, Optional, Protocol

from dockpool import snapshots
from dockpool.addresses import host_port
from dockpool.client_requests import check_instance_cap, client_request, instance_name
from dockpool.cputopology import Topology
from dockpool.engine import connect, engine_errors
from dockpool.errors import Conflict, DockpoolError, InvalidInput, NotFound
from dockpool.host_specs import collect_specs, docker_data_root
from dockpool.images import list_images
from dockpool.instances import InstanceManager
from dockpool.labels import OWNER, Record
from dockpool.limits import Limits
from dockpool.policy import Policy
from dockpool.spec import InstanceSpec
from dockpool.usage import read_usage

from .budgets import Budgets
from .config import ApiConfig, Client
from .fleet.admission import Surroundings, read_surroundings
from .fleet.drains import Drain
from .fleet.members import Member

SPECS_TTL = 2.0  # seconds; specs change slowly and /server_info is polled often


def client_named(config: ApiConfig, name: str) -> Optional[Client]:
    """A token client of this provider's settings, by name (a trusted network's has no package)."""
    return next((c for c in config.clients if c.name == name), None)


def prices_of(config: ApiConfig, owner: str) -> dict[str, float]:
    """What this provider charges the client ``owner`` (her package's prices; none: nothing)."""
    client = client_named(config, owner)
    return dict(config.packages[client.package]["prices"]) if client and client.package else {}


class Takers(Protocol):
    def takers(self) -> list[Member]: ...


class Engine:
    """One engine client per worker thread (the SDK's session is not shared across threads)."""

    def __init__(self, config: ApiConfig, policy: Policy, topology: Topology) -> None:
        self.config, self.policy, self.topology = config, policy, topology
        self._local = threading.local()

    def manager(self) -> InstanceManager:
        manager = getattr(self._local, "manager", None)
        if manager is None:
            manager = InstanceManager(connect(self.config.docker_host, timeout=60), self.policy, self.topology)
            self._local.manager = manager
        return manager

    def surroundings(self) -> Surroundings:
        """What posted P2PRC peers are judged against (admission.py): the engine's networks and published ports."""
        with engine_errors("reading the engine's networks, to judge a posted peer"):
            return read_surroundings(self.manager().client)

    def ok(self) -> bool:
        try:
            with engine_errors("pinging the Docker engine"):
                self.manager().client.ping()
            return True
        except DockpoolError:
            self._local.manager = None  # reconnect next time
            return False


class InstanceSide:
    def __init__(self, config: ApiConfig, policy: Policy, engine: Engine, drain: Drain, peers: Takers,
                 budgets: Budgets) -> None:
        self.config, self.policy, self.engine, self.drain, self.peers, self.budgets = (
            config, policy, engine, drain, peers, budgets)
        self.topology = engine.topology
        self.start_guards: list[Callable[[Record], Optional[str]]] = []  # why a record may not start now, or None
        self.on_removed: list[Callable[[str], None]] = []  # told the name of an instance removed
        self._specs: tuple[float, Optional[dict]] = (0.0, None)
        self._specs_lock = threading.Lock()

    def manager(self) -> InstanceManager:
        return self.engine.manager()

    # ---- specs and images --------------------------------------------------------------------

    def specs(self) -> dict[str, Any]:
        with self._specs_lock:
            taken, cached = self._specs
            if cached is None or time.monotonic() - taken > SPECS_TTL:
                cached = collect_specs(docker_data_root(self.config.docker_host), topology=self.topology)
                self._specs = (time.monotonic(), cached)
            return cached

    def images(self) -> list[dict[str, Any]]:
        offered = set(self.config.images)
        return [i for i in list_images(self.manager().client, self.policy.image_prefix) if i["name"] in offered]

    # ---- instances ---------------------------------------------------------------------------

    def client_view(self, view: dict[str, Any], usage: Optional[dict]) -> dict[str, Any]:
        """Add the jump command and the watchdog's disk figure to a core view."""
        if view.get("ssh"):
            ssh = view["ssh"]
            # The parts of the jump path, for clients that write an ssh config (ProxyJump) from them.
            # Behind NAT the jump host is reached through the first relay (docs/nat.md).
            host, port = ((self.config.relays[0].address, self.config.relays[0].ssh_port) if self.config.relays
                          else (self.policy.ssh_host, self.config.jump_port))
            ssh["jump"] = {"user": self.config.jump_user, "host": host, "port": port}
            ssh["target_host"] = self.policy.probe_host
            ssh["jump_command"] = (
                f"ssh -J {self.config.jump_user}@{host}:{port} "
                f"-p {ssh['port']} {ssh['user']}@{self.policy.probe_host}"
            )
        entry = (usage or {}).get("instances", {}).get(view["name"]) if usage else None
        view["disk_usage"] = None if entry is None else {"size_rw": entry.get("size_rw"),
                                                         "size_deleted_open": entry.get("size_deleted_open", 0),
                                                         "size_host_files": entry.get("size_host_files", 0),
                                                         "measured": (usage or {}).get("updated")}
        return view

    def _views(self, owner: Optional[str]) -> list[dict[str, Any]]:
        usage = read_usage(self.config.usage_file)
        return [self.client_view(v, usage) for v in self.manager().list(owner=owner)]

    def visible(self, client: Client) -> list[dict[str, Any]]:
        return self._views(None if client.admin else client.name)

    def visible_all(self) -> list[dict[str, Any]]:
        """Every instance, for the status page (which shows others' as counts only)."""
        return self._views(None)

    def find(self, client: Client, ref: str) -> Record:
        """The client's own instance (any, for an admin); others' look absent, not forbidden."""
        record = self.manager().find(ref)
        if record is None or not (client.admin or record.labels.get(OWNER) == client.name):
            moved = self.drain.moved_to(ref) if record is None else None
            if moved and (client.admin or moved["owner"] == client.name):
                raise NotFound(f"instance {ref!r} is not here any more: it was moved to "
                               f"{moved['provider']} ({moved['address']}) as {moved['name']}", "id",
                               {"moved_to": {k: moved[k] for k in ("provider", "address", "name")}})
            raise NotFound(f"instance {ref!r} does not exist", "id")
        return record

    def get(self, client: Client, ref: str) -> dict[str, Any]:
        record = self.find(client, ref)
        return self.client_view(self.manager().view(record), read_usage(self.config.usage_file))

    def limits(self, client: Client) -> Limits:
        """The provider's limits, as this client's narrow them."""
        return self.policy.limits.narrowed(dict(client.limits), f"{client.name}'s limits")

    def admission(self, client: Client, body: Any) -> tuple[InstanceSpec, Callable[[InstanceSpec, list[Record]], InstanceSpec]]:
        """A client's request checked against this provider's limits and policy: the spec to
        create, and the check (cap, free name) to run again under the placement lock."""
        params = client_request(body)
        manager = self.manager()
        limits = self.limits(client)
        check_instance_cap(sum(1 for r in manager.records() if r.labels.get(OWNER) == client.name), limits)
        image = params.get("image") or self.config.images[0]
        if image not in self.config.images:
            raise InvalidInput(f"image: {image!r} is not offered here; offered: {', '.join(self.config.images)}", "image",
                               {"offered": list(self.config.images)})
        wanted = params.get("name")

        def admit(spec: InstanceSpec, existing: list[Record]) -> InstanceSpec:
            """Under the placement lock: the cap and a free name, against the instances that exist now."""
            check_instance_cap(sum(1 for r in existing if r.labels.get(OWNER) == client.name), limits)
            name = instance_name(client.name, self.config.provider_name, wanted, [r.name for r in existing])
            return replace(spec, name=name)

        placeholder = instance_name(client.name, self.config.provider_name, wanted, [])  # validated now, chosen later
        return manager.spec({**params, "image": image, "name": placeholder, "owner": client.name}, limits), admit

    def takers(self) -> list[Member]:
        """The live members of the fleet that take new instances (not draining), as /v1/fleet shows them."""
        return self.peers.takers()

    def check_taking(self) -> None:
        """Refuse a new instance (created or moved in) while draining, naming where to go instead."""
        if not self.drain.draining():
            return
        elsewhere = sorted(f"{m.name} ({host_port(m.address, m.server_port)})" for m in self.takers())
        raise Conflict(f"{self.config.provider_name} is draining: its owner is taking the machine back and it takes no "
                       "new instance; " + (f"providers of its fleet that do: {', '.join(elsewhere)}" if elsewhere
                                           else "no other provider of its fleet is known to take one"),
                       "provider", {"draining": True, "elsewhere": elsewhere})

    def check_budget(self, owner: str, doing: str) -> None:
        """Refuse ``doing`` for the client ``owner`` while a budget of hers is spent across the fleet (402)."""
        client = self.client_named(owner)
        if client is not None:
            self.budgets.check(client, doing)

    def client_named(self, name: str) -> Optional[Client]:
        return client_named(self.config, name)

    def create(self, client: Client, body: Any) -> dict[str, Any]:
        self.check_taking()
        self.budgets.check(client, "a new instance")
        spec, admit = self.admission(client, body)
        return self.client_view(self.manager().create(spec, origin="api", admit=admit), None)

    def stop(self, client: Client, ref: str) -> dict[str, Any]:
        return self.client_view(self.manager().stop(self.find(client, ref).id), None)

    def start(self, client: Client, ref: str) -> dict[str, Any]:
        record = self.find(client, ref)
        for guard in self.start_guards:
            refusal = guard(record)
            if refusal:
                raise Conflict(refusal, "id")
        self.budgets.check(client, f"starting {record.name}")
        return self.client_view(self.manager().start(record.id), None)

    def remove(self, client: Client, ref: str) -> None:
        self.remove_record(self.find(client, ref))

    def remove_record(self, record: Record) -> None:
        """Remove an instance, and the snapshot image it ran from if it was moved in."""
        manager = self.manager()
        with engine_errors(f"reading {record.name!r}"):
            image_id = manager.client.api.inspect_container(record.id)["Image"]
        manager.remove(record.id)
        snapshots.remove_if_unused(manager.client, image_id)
        for removed in self.on_removed:
            removed(record.name)

    def record_forward(self, record_name: str, owner: str, member: Member, new_name: str) -> None:
        """Remember where an instance moved (fleet/drains.py): its owner asking for it here is told."""
        self.drain.record_move(record_name, owner, member.name, member.address, new_name)

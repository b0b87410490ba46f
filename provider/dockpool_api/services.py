"""What the routes call: the parts of one provider, built once by the composition root
(wiring.build), and the instance side's operations under the names the routes use.

No part holds this: each was handed only the collaborators it uses (wiring.py)."""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Callable, Optional

from dockpool.instances import InstanceManager
from dockpool.labels import Record
from dockpool.policy import Policy
from dockpool.spec import InstanceSpec

from .budgets import Budgets
from .config import ApiConfig, Client
from .fleet.drains import Drain
from .fleet.gossip import Gossip, RateLimit, Traffic
from .fleet.journal import MoveJournal
from .fleet.members import Member
from .fleet.membership import Membership
from .fleet.metrics import FleetMetrics
from .fleet.moves import Mover
from .fleet.replicas import Replicator
from .fleet.restores import Restorer
from .fleet.spend import FleetSpend
from .fleet.store import ReplicaStore
from .fleet.tls import FleetTLS
from .fleet.transport import Transport
from .instance_side import InstanceSide
from .usage_report import UsageReport


@dataclass(frozen=True)
class Services:
    config: ApiConfig
    policy: Policy
    events: FleetMetrics  # what the fleet's parts count as it happens (served at /metrics)
    instances: InstanceSide
    fleet: Optional[FleetTLS]
    fleet_context: Optional[ssl.SSLContext]
    transport: Optional[Transport]  # the one client to other members (none without a fleet certificate)
    drain: Drain
    peers: Membership
    traffic: Traffic
    answers: RateLimit
    gossip: Gossip
    journal: MoveJournal
    mover: Mover
    replicas: Replicator  # the sender's side of replication
    store: ReplicaStore  # what this provider holds for the other members
    restorer: Restorer
    usage: UsageReport
    spend: FleetSpend
    budgets: Budgets

    # ---- the instance side, as the routes call it -------------------------------------------

    def manager(self) -> InstanceManager:
        return self.instances.manager()

    def engine_ok(self) -> bool:
        return self.instances.engine.ok()

    def specs(self) -> dict[str, Any]:
        return self.instances.specs()

    def images(self) -> list[dict[str, Any]]:
        return self.instances.images()

    def client_view(self, view: dict[str, Any], usage: Optional[dict]) -> dict[str, Any]:
        return self.instances.client_view(view, usage)

    def visible(self, client: Client) -> list[dict[str, Any]]:
        return self.instances.visible(client)

    def visible_all(self) -> list[dict[str, Any]]:
        return self.instances.visible_all()

    def find(self, client: Client, ref: str) -> Record:
        return self.instances.find(client, ref)

    def get(self, client: Client, ref: str) -> dict[str, Any]:
        return self.instances.get(client, ref)

    def admission(self, client: Client, body: Any) -> tuple[InstanceSpec, Callable[[InstanceSpec, list[Record]], InstanceSpec]]:
        return self.instances.admission(client, body)

    def takers(self) -> list[Member]:
        return self.instances.takers()

    def check_taking(self) -> None:
        self.instances.check_taking()

    def check_budget(self, owner: str, doing: str) -> None:
        self.instances.check_budget(owner, doing)

    def client_named(self, name: str) -> Optional[Client]:
        return self.instances.client_named(name)

    def create(self, client: Client, body: Any) -> dict[str, Any]:
        return self.instances.create(client, body)

    def stop(self, client: Client, ref: str) -> dict[str, Any]:
        return self.instances.stop(client, ref)

    def start(self, client: Client, ref: str) -> dict[str, Any]:
        return self.instances.start(client, ref)

    def remove(self, client: Client, ref: str) -> None:
        self.instances.remove(client, ref)

    def remove_record(self, record: Record) -> None:
        self.instances.remove_record(record)

    def record_forward(self, record_name: str, owner: str, member: Member, new_name: str) -> None:
        self.instances.record_forward(record_name, owner, member, new_name)

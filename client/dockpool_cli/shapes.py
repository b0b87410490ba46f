"""The parts of a provider's answers the CLI reads, as types. ``total=False``: a provider
(or a peer, which may be anyone) can leave fields out, and the CLI prints what it got."""
from __future__ import annotations

from typing import Any, Optional, TypedDict


class InstanceView(TypedDict, total=False):
    """An instance as its owner sees it (GET /v1/instances/NAME)."""
    name: str
    id: str
    state: str
    image: Optional[str]
    ssh: dict[str, Any]  # jump {host, port, user}, target_host, port, user, jump_command
    limits: dict[str, Any]
    disk_usage: Optional[dict[str, Any]]
    desktop: Optional[dict[str, Any]]


class Health(TypedDict, total=False):
    draining: bool


class Specs(TypedDict, total=False):
    hostname: str
    cpu: dict[str, Any]
    memory: dict[str, Any]
    disk: dict[str, Any]
    gpus: list[dict[str, Any]]


class Peer(TypedDict, total=False):
    """An entry of a provider's peer table, in P2PRC's shape."""
    Name: str
    IPV4: str
    IPV6: str
    ServerPort: Any


class ReplicaView(TypedDict, total=False):
    """Where an instance's replica is kept (GET /v1/instances/NAME/replicas)."""
    holder: str
    live: bool
    age_seconds: float
    refreshed: str
    shipped_bytes: int
    full: bool
    pause_seconds: float


class HeldReplica(TypedDict, total=False):
    """A replica a provider holds of one of the client's instances (GET /v1/replicas)."""
    instance: str
    provider: str  # the fleet name of the provider that ran the instance
    refreshed: str
    restored: bool


class MoveOffer(TypedDict):
    """The target's grant to move an instance in (POST /v1/moves)."""
    provider: str
    id: str
    grant: str


class MoveProgress(TypedDict, total=False):
    received: int
    state: str


class MoveResult(TypedDict):
    instance: InstanceView


class UsageReport(TypedDict, total=False):
    """GET /v1/usage: what the client's instances used there, and her budgets."""
    since: str
    package: str
    instances: list[dict[str, Any]]
    budgets: list[dict[str, Any]]
    url: str  # not the provider's: the CLI adds the URL it asked

"""A provider as the fleet knows it: a ``Member``, parsed once from P2PRC's wire form (wire.py)
and immutable from then on.

P2PRC's peers and tables speak ``Name``/``ServerPort``/``IPV4``...; inside the service a
member is this dataclass, with one spelling (``name``, ``server_port``, ``address``). A
dockpool provider's entry also carries a ``Seal`` (the wire's ``dockpool`` block): its
Ed25519 key, a version that only grows, the signature (membership.py signs and checks it over
the fields as the wire spells them), its fleet port and whether it drains. The views
(``/v1/fleet``, the status page) are rendered from a Member by ``view``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional, Union

from . import relays
from .relays import RelayPath

Number = Union[int, float]  # P2PRC's float64: kept as it was sent, so that it renders (and verifies) the same


@dataclass(frozen=True)
class Seal:
    """The signed ``dockpool`` block of a member's entry. ``age`` is not signed: how long ago the
    sender heard this version (so every table expires a dead member at about the same time)."""

    key: str  # base64 of the Ed25519 public key
    version: int
    signature: str  # base64
    fleet_port: int
    draining: bool = False
    age: float = 0.0
    relays: tuple[RelayPath, ...] = ()  # behind NAT: where it is reached instead (fleet/relays.py)


@dataclass(frozen=True)
class Member:
    """One entry of the peer table: a member of the fleet (``seal`` set) or a P2PRC peer (no seal)."""

    name: str
    server_port: int  # the API's port (P2PRC's ServerPort)
    ipv4: str = ""  # canonical spellings (wire.py); at least one of the two is set
    ipv6: str = ""
    username: str = ""  # MachineUsername
    latency: int = 0  # ns (a Go time.Duration)
    download: Number = 0
    upload: Number = 0
    udp_port: Optional[int] = None  # UDPServerPort
    ssh_port: Optional[int] = None  # BareMetalSSHPort
    nat: bool = False
    escape: str = ""  # EscapeImplementation
    proxy: bool = False  # ProxyServer
    unsafe: bool = False  # UnSafeMode
    public_key: str = ""
    custom: str = ""  # CustomInformation
    seal: Optional[Seal] = None

    @property
    def address(self) -> str:
        return self.ipv4 or self.ipv6

    @property
    def peer_key(self) -> tuple[str, int]:
        """Where P2PRC knows it: its address and API port (a P2PRC peer's identity)."""
        return (self.address, self.server_port)

    @property
    def signed(self) -> bool:
        return self.seal is not None

    @property
    def key(self) -> Optional[str]:
        """Its signing key, for a member."""
        return self.seal.key if self.seal else None

    @property
    def version(self) -> int:
        return self.seal.version if self.seal else 0

    @property
    def age(self) -> float:
        return self.seal.age if self.seal else 0.0

    @property
    def draining(self) -> bool:
        return bool(self.seal and self.seal.draining)

    @property
    def relays(self) -> tuple[RelayPath, ...]:
        """The relays its signed entry names (empty: reached at its own address)."""
        return self.seal.relays if self.seal else ()

    def aged(self, age: float) -> "Member":
        """The same entry, relayed with ``age`` seconds since its version was heard."""
        if self.seal is None:
            return self
        return replace(self, seal=replace(self.seal, age=round(max(0.0, age), 3)))

    def unsealed(self) -> "Member":
        """Its P2PRC fields only: what posting makes of any entry (posting never makes a member)."""
        return replace(self, seal=None) if self.seal else self


@dataclass(frozen=True)
class Heard:
    """A live peer as this provider holds it: the entry, its tier, how long ago it was heard
    (its newest version, or a direct answer) and how the last direct exchange with it went."""

    member: Member
    tier: str  # "member": the fleet's; "p2prc": posted, never trusted
    heard_seconds_ago: float
    answers: Optional[bool]  # None: not asked yet


def view(heard: Heard) -> dict[str, Any]:
    """A peer as ``/v1/fleet``, the status page and the CLI show it."""
    member = heard.member
    return {"name": member.name, "address": member.address, "port": member.server_port,
            "heard_seconds_ago": round(heard.heard_seconds_ago, 1), "answers": heard.answers,
            "tier": heard.tier, "signed": heard.tier == "member", "draining": member.draining,
            **({"relays": relays.render(member.relays)} if member.relays else {})}

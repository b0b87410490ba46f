"""A member's signed relays are the member's choice, not this provider's: every relay address must
pass the peer rule before it is dialled, probing the relays spends the call's deadline, and what
the liveness check remembers is bounded (issue 33's review of the relay)."""
from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from dockpool.networks import NetworkRule
from dockpool_api.fleet import relays
from dockpool_api.fleet.gossip import verify_member
from dockpool_api.fleet.members import Member
from dockpool_api.fleet.membership import Signer
from dockpool_api.fleet.transport import Call, HttpTransport, Unreachable, ask, reach
from dockpool_api.fleet.wire import parse_entry

PUBLIC_ONLY = NetworkRule(allow=("203.0.113.0/24",))
LOOPBACK_BUT_ONE = NetworkRule(allow=("127.0.0.0/8",), deny=("127.0.0.1/32",))  # 127.0.0.1 refused, the rest allowed


class Counting:
    """A listener on ``address`` that counts the connections it accepts."""

    def __init__(self, address: str) -> None:
        self.sock = socket.create_server((address, 0))
        self.address, self.port = address, self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()


@pytest.fixture
def listeners() -> Iterator[list[Counting]]:
    made = [Counting("127.0.0.1"), Counting("127.0.0.2")]
    yield made
    for each in made:
        each.sock.close()


def relayed(tmp_path: Path, paths: list[tuple[str, int]]) -> Member:
    signer = Signer(str(tmp_path / "membership.key"))
    return signer.sign(parse_entry({"Name": "relayed", "IPV4": "203.0.113.9", "ServerPort": "8088"}), 5, 8444,
                       paths=relays.parse([{"address": a, "api_port": p, "ssh_port": p, "fleet_port": p}
                                           for a, p in paths], "relays"))


def test_a_relay_outside_the_peer_rule_is_never_dialled(tmp_path, listeners):
    """The entry's own address is public and allowed; its signed relay is loopback: before the fix
    verify_member connected to it (the reviewer's demo), now nothing connects."""
    loop = listeners[0]
    entry = relayed(tmp_path, [(loop.address, loop.port)])
    transport = HttpTransport(ssl.create_default_context(), PUBLIC_ONLY)
    assert not verify_member(SimpleNamespace(peer_rule=PUBLIC_ONLY, gossip_interval=1.0), transport, entry)
    with pytest.raises(Unreachable, match="127.0.0.1"):
        ask(transport, entry, Call("GET", "/v1/fleet/identity", deadline=2))
    time.sleep(0.1)
    assert loop.accepted == 0


def test_a_refused_relay_is_skipped_and_the_next_allowed_one_taken(tmp_path, listeners):
    refused, allowed = listeners
    entry = relayed(tmp_path, [(refused.address, refused.port), (allowed.address, allowed.port)])
    to = reach(entry, LOOPBACK_BUT_ONE)
    assert (to.address, to.port, to.name) == (allowed.address, allowed.port, "relayed")
    time.sleep(0.1)
    assert refused.accepted == 0 and allowed.accepted == 1  # the liveness probe, on the allowed relay only


def test_a_relay_named_by_dns_is_judged_by_the_address_it_resolves_to(tmp_path, listeners):
    loop = listeners[0]
    entry = relayed(tmp_path, [("localhost", loop.port)])
    with pytest.raises(Unreachable, match="localhost"):
        reach(entry, NetworkRule())  # the default rule: loopback is never a peer, whatever name leads there
    assert relays.admitted(entry.relays, NetworkRule(allow=("127.0.0.0/8", "::1/128"), deny=()).permits,
                           lambda: 5.0)[0].address in ("127.0.0.1", "::1")  # dialled as the address checked


def test_probing_the_relays_spends_the_calls_deadline(tmp_path):
    """Eight relays that never complete a connection (listeners whose backlog is full: the kernel
    drops further SYNs): a 0.5 s call took 8.5 s before the fix (one 1 s probe each, then the connect)."""
    holes, fillers = [], []
    for i in range(8):
        hole = socket.create_server((f"127.0.0.{10 + i}", 0), backlog=0)
        holes.append(hole)
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(hole.getsockname())
            fillers.append(filler)
    try:
        time.sleep(0.2)
        entry = relayed(tmp_path, [hole.getsockname() for hole in holes])
        transport = HttpTransport(ssl.create_default_context(), NetworkRule(allow=("127.0.0.0/8",), deny=()))
        started = time.monotonic()
        with pytest.raises(Unreachable):
            ask(transport, entry, Call("GET", "/v1/fleet/identity", deadline=0.5))
        assert time.monotonic() - started < 1.5  # the deadline and some slack on a busy machine, not 8.5 s
    finally:
        for each in holes + fillers:
            each.close()


def test_the_relays_remembered_are_bounded():
    liveness = relays.Liveness(probe=lambda address, port, timeout: False, clock=lambda: 0.0)
    for port in range(1, 3 * relays.MAX_SEEN):
        liveness.up("203.0.113.5", port)
    assert len(liveness._seen) <= relays.MAX_SEEN
    assert ("203.0.113.5", 3 * relays.MAX_SEEN - 1) in liveness._seen  # the newest kept, the oldest dropped


def test_a_probe_cut_short_by_the_deadline_is_not_remembered_as_down():
    liveness = relays.Liveness(probe=lambda address, port, timeout: False, timeout=1.0, clock=lambda: 0.0)
    assert not liveness.up("203.0.113.5", 41002, most=0.1)
    assert ("203.0.113.5", 41002) not in liveness._seen

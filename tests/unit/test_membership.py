"""The fleet's membership rules on the table itself: signed versions, ages, expiry, tombstones.

Real Ed25519 keys and files; the clock is the table's own seam, and the direct check of a
new peer (an HTTP call, tested against real processes in tests/integration/test_fleet.py)
is replaced by a recorder here so the rules can be read one by one."""
from __future__ import annotations

import pytest

from dockpool.errors import InvalidInput
from dockpool.membership import Membership, Signer
from dockpool.peers import validate_entry

EXPIRY = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(address: str, name: str = "", port: int = 8088) -> dict:
    return validate_entry({"Name": name or address, "IPV4": address, "ServerPort": str(port)})


class Peer:
    """Another provider: its own key, signing its own entry with growing versions."""

    def __init__(self, tmp_path, address: str) -> None:
        folder = tmp_path / address
        folder.mkdir()
        self.signer = Signer(str(folder / "membership.key"))
        self.entry = entry(address)
        self.version = 1_000_000

    def signed(self, age: float = 0.0, **changes) -> dict:
        self.version += 1
        out = self.signer.sign({**self.entry, **changes}, self.version)
        out["dockpool"]["age"] = age
        return out


@pytest.fixture()
def table(tmp_path):
    checked: list[str] = []
    clock = Clock()

    def verify(e: dict) -> bool:
        checked.append(e["IPV4"])
        return True

    me = Membership(str(tmp_path / "me" / "peers.json"), entry("192.0.2.1", "me"), verify=verify, expiry=EXPIRY,
                    clock=clock)
    me.checked, me.test_clock = checked, clock
    return me


def names(table: Membership) -> list[str]:
    return [e["Name"] for e in table.table()["ip_address"][1:]]


def test_own_entry_is_signed_and_verifies(table):
    from dockpool.membership import signature_valid

    own = table.table()["ip_address"][0]
    assert own["Name"] == "me" and signature_valid(own)
    tampered = {**own, "ServerPort": "9999"}
    assert not signature_valid(tampered)


def test_a_newer_signed_version_renews_and_an_older_one_never_overwrites(table, tmp_path):
    peer = Peer(tmp_path, "192.0.2.2")
    table.merge({"ip_address": [peer.signed()]})
    assert names(table) == ["192.0.2.2"] and table.checked == ["192.0.2.2"]  # checked directly once
    old = peer.signed(Name="old name")
    new = peer.signed(Name="renamed by itself")
    table.merge({"ip_address": [new]})
    table.merge({"ip_address": [old]})  # relayed late: older than what is held
    assert names(table) == ["renamed by itself"]
    assert table.checked == ["192.0.2.2"]  # a known peer is not checked again


def test_nobody_else_can_renew_or_rewrite_a_peer(table, tmp_path):
    peer, liar = Peer(tmp_path, "192.0.2.2"), Peer(tmp_path, "192.0.2.66")
    table.merge({"ip_address": [peer.signed()]})
    table.test_clock.now += 20
    # The liar signs the peer's address with its own key and a higher version ...
    forged = liar.signer.sign({**peer.entry, "Name": "hijacked"}, peer.version + 100)
    # ... or changes a field of the peer's real, newer entry, keeping its signature.
    tampered = {**peer.signed(), "ServerPort": "9999"}
    tampered["dockpool"] = {**tampered["dockpool"]}
    with_bad_signature = {**peer.signed(), "Name": "tampered"}
    table.merge({"ip_address": [forged, with_bad_signature]})
    member = table.members()[0]
    assert member["name"] == "192.0.2.2" and member["heard_seconds_ago"] == 20.0  # neither renewed nor rewritten
    with pytest.raises(InvalidInput):
        table.merge({"ip_address": [{**peer.signed(), "dockpool": {"key": "x", "version": 1, "signature": "y", "age": 0}}]})


def test_a_silent_peer_expires_and_an_old_version_cannot_bring_it_back(table, tmp_path):
    peer = Peer(tmp_path, "192.0.2.2")
    last = peer.signed()
    table.merge({"ip_address": [last]})
    table.test_clock.now += EXPIRY - 1
    table.heartbeat()
    assert names(table) == ["192.0.2.2"]
    table.test_clock.now += 2
    assert names(table) == []  # not served once silent for longer than the expiry ...
    table.heartbeat()  # ... and dropped at the next round, remembered as a tombstone
    table.merge({"ip_address": [last]})  # its last version, relayed late by someone
    assert names(table) == [] and table.checked == ["192.0.2.2"]
    table.merge({"ip_address": [peer.signed()]})  # the peer restarted: a newer version
    assert names(table) == ["192.0.2.2"] and table.checked == ["192.0.2.2", "192.0.2.2"]


def test_relayed_age_counts_so_news_that_travelled_expires_on_time(table, tmp_path):
    peer = Peer(tmp_path, "192.0.2.2")
    table.merge({"ip_address": [peer.signed()]})
    table.test_clock.now += 5
    table.merge({"ip_address": [peer.signed(age=25.0)]})  # a relayer heard this version 25 s ago
    assert table.members()[0]["heard_seconds_ago"] == 5.0  # never later than the direct news it had
    table.test_clock.now += 1
    table.merge({"ip_address": [peer.signed(age=1e6)]})  # an absurd age counts as the expiry, no more
    assert table.members()[0]["heard_seconds_ago"] == 6.0


def test_a_p2prc_peer_is_renewed_only_by_a_direct_answer(table):
    p2prc = entry("192.0.2.9", "go-peer")
    table.merge({"ip_address": [p2prc]})
    table.test_clock.now += EXPIRY - 5
    table.merge({"ip_address": [p2prc]})  # relayed copies prove nothing
    assert table.members()[0]["heard_seconds_ago"] == EXPIRY - 5
    table.answered(p2prc, True)
    assert table.members()[0]["heard_seconds_ago"] == 0.0 and table.members()[0]["signed"] is False
    assert "dockpool" not in table.p2prc_table()["ip_address"][1] and "dockpool" not in table.p2prc_table()["ip_address"][0]


def test_peers_known_before_a_restart_are_tried_not_served(table, tmp_path):
    peer = Peer(tmp_path, "192.0.2.2")
    table.merge({"ip_address": [peer.signed()]})
    clock = Clock()
    again = Membership(table.path, entry("192.0.2.1", "me"), verify=lambda e: True, expiry=EXPIRY, clock=clock)
    assert names(again) == [] and [e["Name"] for e in again.targets(3)] == ["192.0.2.2"]
    again.merge({"ip_address": [peer.signed()]})  # heard again
    assert names(again) == ["192.0.2.2"]
    clock.now += EXPIRY + 1
    again.heartbeat()
    assert again.targets(3) == []
    assert again.public_key == table.public_key  # the key file is kept across restarts


def test_the_table_and_the_checks_per_merge_are_bounded(tmp_path):
    checked: list[str] = []
    small = Membership(str(tmp_path / "peers.json"), entry("192.0.2.1", "me"), max_peers=5, checks_per_merge=3,
                       verify=lambda e: checked.append(e["IPV4"]) or True)
    many = {"ip_address": [entry(f"198.51.100.{i}") for i in range(1, 6)]}
    small.merge(many)
    assert len(checked) == 3 and len(names(small)) == 3  # the rest come with the next exchange
    small.merge(many)
    assert len(names(small)) == 5
    small.merge({"ip_address": [entry("198.51.100.99")]})
    assert len(names(small)) == 5 and len(checked) == 5  # full: not even checked
    with pytest.raises(InvalidInput) as too_many:
        small.merge({"ip_address": [entry(f"203.0.113.{i}") for i in range(1, 7)]})
    assert too_many.value.field == "ip_address"

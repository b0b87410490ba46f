"""The fleet's membership rules on the table itself: two tiers, signed versions, identity by
name, ages, expiry, tombstones, removal.

Real Ed25519 keys and files; the clock is the table's own seam, and the direct checks of a
new peer (over mutual TLS for a member, plain HTTP for a P2PRC peer: tested against real
processes in tests/integration/test_fleet.py) are replaced by recorders here so the rules
can be read one by one."""
from __future__ import annotations

from dataclasses import replace

import pytest

from dockpool.errors import InvalidInput
from dockpool.networks import NetworkRule
from dockpool_api.fleet.members import Member
from dockpool_api.fleet.membership import Membership, Signer, signature_valid, signed_bytes
from dockpool_api.fleet.wire import FIELDS, parse_entry, render_entry

# The documentation networks these tests use are not public: opened by name, as an operator opens a LAN.
DOCUMENTATION_NETS = NetworkRule(allow=("0.0.0.0/0", "::/0", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))

EXPIRY = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(address: str, name: str = "", port: int = 8088) -> Member:
    return parse_entry({"Name": name or address, "IPV4": address, "ServerPort": str(port)})


def wire(*members: Member) -> dict:
    return {"ip_address": [render_entry(m) for m in members]}


def addresses(table: Membership) -> list[str]:
    return [e["IPV4"] for e in table.table()["ip_address"][1:]]


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
        out = render_entry(self.signer.sign(replace(self.entry, **changes), self.version, 8444))
        out["dockpool"]["age"] = age
        return out


@pytest.fixture()
def table(tmp_path):
    checked: list[str] = []
    clock = Clock()

    def verify(e: Member) -> bool:
        checked.append(e.ipv4)
        return True

    p2prc_checked: list[str] = []

    def verify_p2prc(e: Member) -> bool:
        p2prc_checked.append(e.ipv4)
        return True

    me = Membership(str(tmp_path / "me" / "peers.json"), entry("192.0.2.1", "me"), verify=verify, expiry=EXPIRY,
                    clock=clock, verify_p2prc=verify_p2prc, rule=DOCUMENTATION_NETS)
    me.checked, me.p2prc_checked, me.test_clock = checked, p2prc_checked, clock
    return me


def names(table: Membership) -> list[str]:
    return [e["Name"] for e in table.table()["ip_address"][1:]]


def test_own_entry_is_signed_and_verifies(table):
    own = table.table()["ip_address"][0]
    assert own["Name"] == "me" and signature_valid(parse_entry(own))
    assert not signature_valid(parse_entry({**own, "ServerPort": "9999"}))
    assert not signature_valid(parse_entry({**own, "dockpool": {**own["dockpool"], "fleet_port": 9999}}))


def test_a_newer_signed_version_renews_even_a_new_address_and_an_older_one_never_overwrites(table, tmp_path):
    peer = Peer(tmp_path, "192.0.2.2")
    table.merge({"ip_address": [peer.signed()]})
    assert names(table) == ["192.0.2.2"] and table.checked == ["192.0.2.2"]  # checked directly once
    old = peer.signed(custom="old")
    new = peer.signed(ipv4="192.0.2.77")  # the same provider (its name, its key) at a new address
    table.merge({"ip_address": [new]})
    table.merge({"ip_address": [old]})  # relayed late: older than what is held
    assert names(table) == ["192.0.2.2"] and addresses(table) == ["192.0.2.77"]
    assert table.checked == ["192.0.2.2"]  # a known member is not checked again
    assert table.member("192.0.2.2").ipv4 == "192.0.2.77" and table.member("nobody") is None


def test_nobody_else_can_renew_or_rewrite_a_member(table, tmp_path):
    peer, liar = Peer(tmp_path, "192.0.2.2"), Peer(tmp_path, "192.0.2.66")
    table.merge({"ip_address": [peer.signed()]})
    table.test_clock.now += 20
    # The liar signs the member's name with its own key and a higher version ...
    forged = render_entry(liar.signer.sign(replace(peer.entry, ipv4="192.0.2.66"), peer.version + 100, 8444))
    # ... or changes a field of the member's real, newer entry, keeping its signature.
    with_bad_signature = {**peer.signed(), "IPV4": "192.0.2.66"}
    table.merge({"ip_address": [forged, with_bad_signature]})
    heard = table.members()[0]
    assert heard.member.address == "192.0.2.2" and heard.heard_seconds_ago == 20.0  # neither renewed nor rewritten
    with pytest.raises(InvalidInput):
        table.merge({"ip_address": [{**peer.signed(), "dockpool": {"key": "x", "version": 1, "signature": "y", "age": 0}}]})


def test_a_suspected_member_expires_unless_it_refutes_and_an_old_version_cannot_bring_it_back(table, tmp_path):
    peer = Peer(tmp_path, "192.0.2.2")
    last = peer.signed()
    table.merge({"ip_address": [last]})
    table.test_clock.now += 10 * EXPIRY
    table.expire()
    assert names(table) == ["192.0.2.2"]  # silence alone is no failure: no heartbeat is sent
    news = table.suspect("192.0.2.2", peer.version, age=5.0)  # raised 5 s ago by a member it failed to answer
    assert news == {"suspect": "192.0.2.2", "version": peer.version, "since": table.test_clock.now - 5.0}
    assert table.suspect("192.0.2.2", peer.version, age=0.0) is None  # not news twice
    table.test_clock.now += EXPIRY - 6
    table.expire()
    assert names(table) == ["192.0.2.2"]
    table.test_clock.now += 1
    table.expire()  # the suspicion ran its time, counted from when it was raised: dead, remembered as a tombstone
    assert names(table) == [] and table.version_of("192.0.2.2") is None
    table.merge({"ip_address": [last]})  # its last version, relayed late by someone
    assert names(table) == [] and table.checked == ["192.0.2.2"]
    table.merge({"ip_address": [peer.signed()]})  # the peer restarted: a newer version
    assert names(table) == ["192.0.2.2"] and table.checked == ["192.0.2.2", "192.0.2.2"]


def test_relayed_age_counts_so_news_that_travelled_expires_on_time(table, tmp_path):
    peer = Peer(tmp_path, "192.0.2.2")
    table.merge({"ip_address": [peer.signed()]})
    table.test_clock.now += 5
    table.merge({"ip_address": [peer.signed(age=25.0)]})  # a relayer heard this version 25 s ago
    assert table.members()[0].heard_seconds_ago == 5.0  # never later than the direct news it had
    table.test_clock.now += 1
    table.merge({"ip_address": [peer.signed(age=1e6)]})  # an absurd age counts as the expiry, no more
    assert table.members()[0].heard_seconds_ago == 6.0


def test_posting_never_makes_a_member_and_p2prc_peers_stay_in_their_tier(table, tmp_path):
    p2prc, provider = entry("192.0.2.9", "go-peer"), Peer(tmp_path, "192.0.2.10")
    table.merge(wire(p2prc))  # an unsigned entry in a member's exchange: ignored
    assert table.members() == [] and table.p2prc_checked == []
    table.merge_p2prc({"ip_address": [render_entry(p2prc), provider.signed()]})  # what a client or P2PRC peer posts
    assert table.checked == [] and sorted(table.p2prc_checked) == ["192.0.2.10", "192.0.2.9"]
    assert {m.tier for m in table.members()} == {"p2prc"} and names(table) == []  # never exchanged with members
    assert table.member("192.0.2.10") is None  # never a move's source or target
    shown = table.p2prc_table()["ip_address"]
    assert [e["Name"] for e in shown] == ["me", "go-peer", "192.0.2.10"] and all("dockpool" not in e for e in shown)
    table.test_clock.now += EXPIRY - 5
    table.merge_p2prc(wire(p2prc))  # relayed copies prove nothing
    assert table.members()[0].heard_seconds_ago == EXPIRY - 5
    table.answered(p2prc, True)
    assert table.members()[0].heard_seconds_ago == 0.0 and table.members()[0].member.signed is False
    assert table.p2prc_targets(5) and all(not e.signed for e in table.p2prc_targets(5))
    assert table.targets(5) == []


def test_the_provider_never_lists_itself(table, tmp_path):
    me = table.table()["ip_address"][0]
    mimic = Peer(tmp_path, "192.0.2.5")
    table.merge({"ip_address": [me, mimic.signed(name="me")]})  # its own entry relayed; another key under its name
    table.merge_p2prc(wire(entry("192.0.2.1", "anything"), entry("192.0.2.6", "me")))
    assert table.members() == [] and table.checked == [] and table.p2prc_checked == []


def test_an_administrator_removes_members_and_p2prc_peers(table, tmp_path):
    peer = Peer(tmp_path, "192.0.2.2")
    last = peer.signed()
    table.merge({"ip_address": [last]})
    table.merge_p2prc(wire(entry("192.0.2.9", "go-peer")))
    assert table.remove("192.0.2.2") == ["192.0.2.2"] and table.remove("go-peer") == ["go-peer"]
    assert table.members() == [] and table.remove("go-peer") == []
    table.merge({"ip_address": [last]})  # not back with the version it had
    table.merge_p2prc(wire(entry("192.0.2.9", "go-peer")))  # nor posted again while remembered
    assert table.members() == []
    Membership(table.path, entry("192.0.2.1", "me"), verify=lambda e: True)  # the removal was saved
    assert '"go-peer"' not in open(table.path).read()


def test_peers_known_before_a_restart_are_tried_not_served(table, tmp_path):
    peer, silent, same = Peer(tmp_path, "192.0.2.2"), Peer(tmp_path, "192.0.2.3"), Peer(tmp_path, "192.0.2.4")
    unchanged = same.signed()
    table.merge({"ip_address": [peer.signed(), silent.signed(), unchanged]})
    clock = Clock()
    again = Membership(table.path, entry("192.0.2.1", "me"), verify=lambda e: True, expiry=EXPIRY, clock=clock)
    assert names(again) == [] and sorted(e.name for e in again.targets(3)) == ["192.0.2.2", "192.0.2.3", "192.0.2.4"]
    again.merge({"ip_address": [peer.signed()]})  # heard again, with a newer version
    again.merge({"ip_address": [unchanged]})  # heard again with the version it had (nothing re-signs as a heartbeat)
    assert sorted(names(again)) == ["192.0.2.2", "192.0.2.4"]
    clock.now += EXPIRY + 1
    again.expire()  # not heard since the restart: gone; the heard stay (they leave only by suspicion)
    assert sorted(e.name for e in again.targets(3)) == ["192.0.2.2", "192.0.2.4"]
    assert again.public_key == table.public_key  # the key file is kept across restarts


def test_the_table_and_the_checks_per_merge_are_bounded(tmp_path):
    checked: list[str] = []
    small = Membership(str(tmp_path / "peers.json"), entry("192.0.2.1", "me"), max_peers=5, checks_per_merge=3,
                       verify=lambda e: checked.append(e.ipv4) or True)
    peers = [Peer(tmp_path, f"198.51.100.{i}") for i in range(1, 7)]
    many = {"ip_address": [p.signed() for p in peers[:5]]}
    small.merge(many)
    assert len(checked) == 3 and len(names(small)) == 3  # the rest come with the next exchange
    small.merge(many)
    assert len(names(small)) == 5
    small.merge({"ip_address": [peers[5].signed()]})
    assert len(names(small)) == 5 and len(checked) == 5  # full: not even checked
    with pytest.raises(InvalidInput) as too_many:
        small.merge_p2prc(wire(*(entry(f"203.0.113.{i}") for i in range(1, 7))))
    assert too_many.value.field == "ip_address"


@pytest.mark.parametrize(
    "entry, field",
    [
        ({"IPV4": "10.0.0.1", "IPV6": {}, "ServerPort": "1"}, "IPV6"),
        ({"IPV4": "10.0.0.1", "ServerPort": "1", "ProxyServer": 0}, "ProxyServer"),
        ({"IPV4": "10.0.0.1", "ServerPort": "1", "NAT": 1}, "NAT"),
        ({"IPV4": "", "IPV6": "", "ServerPort": "1"}, "IPV4"),
        ({"IPV4": "::1", "ServerPort": "1"}, "IPV4"),
        ({"IPV4": "10.0.0.1", "ServerPort": True}, "ServerPort"),
        ({"IPV4": "10.0.0.1", "ServerPort": "1", "Latency": True}, "Latency"),
        ({"IPV4": "10.0.0.1", "ServerPort": "1", "Name": "a\nb"}, "Name"),
    ],
)
def test_peer_entries_are_checked_by_type_not_truthiness(entry, field):
    with pytest.raises(InvalidInput) as info:
        parse_entry(entry)
    assert info.value.field == f"ip_address[0].{field}"


def test_a_draining_provider_says_so_in_its_signed_entry_and_nobody_else_can_say_it_for_it(table, tmp_path):
    """The drain travels with the member's own signature: the fleet shows it, and a relayer can
    neither add it to another's entry nor take it off (the entry would no longer verify)."""
    peer = Peer(tmp_path, "192.0.2.7")

    def shown() -> list[bool]:
        return [m.member.draining for m in table.members() if m.member.name == "192.0.2.7"]

    table.merge({"ip_address": [peer.signed()]})
    forged = peer.signed()  # a newer version, signed as not draining ...
    forged["dockpool"]["draining"] = True  # ... with the flag added by someone else
    table.merge({"ip_address": [forged]})
    assert shown() == [False]
    peer.version += 1
    draining = render_entry(peer.signer.sign(peer.entry, peer.version, 8444, draining=True))
    table.merge({"ip_address": [draining]})
    assert shown() == [True]
    stripped = render_entry(peer.signer.sign(peer.entry, peer.version + 5, 8444, draining=True))
    del stripped["dockpool"]["draining"]  # a relayer hiding the drain
    table.merge({"ip_address": [stripped]})
    assert shown() == [True]
    with pytest.raises(InvalidInput) as refused:
        parse_entry({"IPV4": "192.0.2.8", "ServerPort": "1", "dockpool": {**draining["dockpool"], "draining": False}})
    assert refused.value.field == "ip_address[0].dockpool.draining"


def test_this_provider_signs_its_drain_when_it_changes(tmp_path):
    state = {"draining": False}
    me = Membership(str(tmp_path / "peers.json"), entry("192.0.2.1", "me"), draining=lambda: state["draining"])
    assert "draining" not in me.table()["ip_address"][0]["dockpool"]
    state["draining"] = True
    me.renew()
    own = me.table()["ip_address"][0]
    assert own["dockpool"]["draining"] is True and signature_valid(parse_entry(own))


def test_p2prc_s_tables_of_either_age_are_read_and_typed_as_its_current_client_decodes():
    """P2PRC's IpAddress since April 2025: NAT and ProxyServer booleans, Latency a time.Duration (an
    integer of ns), CustomInformation a string that Go may write as null; its older tables spell the
    flags "True"/"False". Fields it may add are dropped, as Go's decoder drops them."""
    current = parse_entry({"IPV4": "192.0.2.9", "ServerPort": "8088", "NAT": True, "ProxyServer": True,
                              "Latency": 48211873, "CustomInformation": None, "CustomInformationKey": "x"})
    older = parse_entry({"IPV4": "192.0.2.9", "ServerPort": "8088", "NAT": "True", "ProxyServer": "False",
                            "Latency": 1.5, "Country": {"nested": [1]}})
    assert (current.nat, current.proxy, current.latency, current.custom) == (True, True, 48211873, "")
    assert (older.nat, older.proxy, older.latency) == (True, False, 2)
    assert set(render_entry(current)) == set(render_entry(older)) == set(FIELDS)
    with pytest.raises(InvalidInput) as refused:
        parse_entry({"IPV4": "192.0.2.9", "ServerPort": "8088", "Latency": 2**63})
    assert refused.value.field == "ip_address[0].Latency"


def test_a_member_s_signature_covers_its_flags_as_providers_before_booleans_signed_them(tmp_path):
    """A fleet upgraded one provider at a time: the old spelling and the new one sign the same bytes."""
    as_text = parse_entry({"Name": "p", "IPV4": "192.0.2.9", "ServerPort": "8088", "NAT": "True"})
    as_bool = parse_entry({"Name": "p", "IPV4": "192.0.2.9", "ServerPort": "8088", "NAT": True})
    assert signed_bytes(as_text, 1, "k", 8444) == signed_bytes(as_bool, 1, "k", 8444)
    assert b'"NAT":"True"' in signed_bytes(as_bool, 1, "k", 8444) and b'"ProxyServer":"False"' in signed_bytes(as_bool, 1, "k", 8444)


def test_a_newer_signed_version_refutes_a_suspicion_and_a_suspicion_of_us_is_refuted_by_signing_anew(table, tmp_path):
    peer = Peer(tmp_path, "192.0.2.2")
    table.merge({"ip_address": [peer.signed()]})
    assert table.suspect("192.0.2.2", peer.version) is not None
    assert table.take([peer.signed()])  # the suspected member signed a newer version: news to pass on
    table.test_clock.now += 2 * EXPIRY
    table.expire()
    assert names(table) == ["192.0.2.2"]  # refuted: never dead
    own = table.own_version()
    news = table.suspect("me", own)
    assert news is not None and news["alive"]["dockpool"]["version"] > own and signature_valid(parse_entry(news["alive"]))
    assert table.suspect("me", own) is None  # an older suspicion of us is no news


def test_the_summary_follows_the_live_members_so_equal_tables_have_equal_roots(table, tmp_path):
    peers = [Peer(tmp_path, f"192.0.2.{i}") for i in range(2, 6)]
    table.merge({"ip_address": [p.signed() for p in peers]})
    assert table.size() == 5  # us and four
    before = table.root()
    table.merge({"ip_address": [peers[0].signed()]})
    assert table.root() != before and table.version_of("192.0.2.2") == peers[0].version
    live, dead = table.digests(list(range(64)))
    assert live["192.0.2.2"] == peers[0].version and live["me"] == table.own_version() and dead == {}
    table.bury({"192.0.2.3": peers[1].version})  # another member's table holds it dead
    live, dead = table.digests(list(range(64)))
    assert "192.0.2.3" not in live and dead == {"192.0.2.3": peers[1].version} and table.size() == 4
    assert [e["Name"] for e in table.entries(["192.0.2.4", "nobody", "192.0.2.3"])] == ["192.0.2.4"]

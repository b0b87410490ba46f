"""What a fleet certificate holder can claim in an exchange, and what it cannot (issue 32's review):
no member is evicted by another's word, a suspicion is refuted by one re-signing, a caller not in
the table is heard only about itself, tombstones are bounded, and every step is charged.

Real signed tables answering through Sync.answer and Gossip.answer, as the fleet listener's
route calls them; the clock is the tables' own seam."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from dockpool.errors import Busy
from dockpool.networks import NetworkRule
from dockpool_api.fleet.gossip import GOSSIP_PATH, Gossip, Traffic
from dockpool_api.fleet.membership import Membership
from dockpool_api.fleet.metrics import FleetMetrics
from dockpool_api.fleet.sync import Sync
from dockpool_api.fleet.wire import parse_entry

ANYWHERE = NetworkRule(allow=("0.0.0.0/0", "10.0.0.0/8"), deny=())
EXPIRY = 30.0
FOREVER = 2**63 - 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def table(index: int, clock: Clock, max_peers: int = 1000) -> Membership:
    return Membership(None, parse_entry({"Name": f"p{index}", "IPV4": f"10.0.0.{index}", "ServerPort": "8088"}),
                      max_peers=max_peers, rule=ANYWHERE, verify=lambda e: True, clock=clock, expiry=EXPIRY,
                      checks_per_merge=1000)


@pytest.fixture()
def fleet():
    """p1 (the table under attack), p2 (the victim) and p3 (a member holding a fleet certificate), all members."""
    clock = Clock()
    tables = [table(i, clock) for i in (1, 2, 3)]
    everyone = [t.own() for t in tables]
    for t in tables:
        t.take(everyone)
    return clock, tables, Sync(tables[0], clock=clock)


def exchange(opener: Sync, answerer: Sync) -> None:
    """``opener`` runs a whole exchange with ``answerer`` through JSON, as its certificate's name."""
    opener.run(lambda m: json.loads(json.dumps(answerer.answer(json.loads(json.dumps(m)), opener.table.name))))


def test_a_dead_claim_above_the_held_version_buries_nobody_and_the_victim_stays(fleet):
    clock, (me, victim, attacker), sync = fleet
    sync.answer({"buckets": [], "digests": {}, "dead": {"p2": FOREVER}}, "p3")
    assert me.member("p2") is not None and me.suspicion("p2") is None
    me.take([victim.renew()])  # and its newer versions are still taken
    assert me.version_of("p2") == victim.own_version()


def test_a_dead_claim_at_the_held_version_is_a_suspicion_one_re_signing_refutes(fleet):
    clock, (me, victim, attacker), sync = fleet
    sync.answer({"buckets": [], "digests": {}, "dead": {"p2": victim.own_version()}}, "p3")
    assert me.member("p2") is not None and me.suspicion("p2")["version"] == victim.own_version()
    victim_sync = Sync(victim, clock=clock)
    before = victim.own_version()
    exchange(victim_sync, sync)  # the victim calls: it hears the suspicion in the answer and signs anew
    exchange(victim_sync, sync)  # its refutation rides along its next opening
    assert victim.own_version() > before
    clock.now += EXPIRY
    me.expire()
    assert me.member("p2") is not None and me.suspicion("p2") is None
    assert me.version_of("p2") == victim.own_version()


def test_a_suspicion_above_the_held_version_is_ignored(fleet):
    clock, (me, victim, attacker), sync = fleet
    sync.answer({"root": "0" * 16, "news": [{"suspect": "p2", "version": FOREVER, "age": 1}]}, "p3")
    assert me.suspicion("p2") is None


def test_a_suspicion_dated_far_back_runs_from_at_most_max_age_ago(fleet):
    clock, (me, victim, attacker), sync = fleet
    sync.answer({"root": "0" * 16, "news": [{"suspect": "p2", "version": victim.own_version(), "age": 1e9}]}, "p3")
    clock.now += 0.001
    me.expire()
    assert me.member("p2") is not None  # not dead at the next round
    clock.now += EXPIRY - sync.max_age - 0.002
    me.expire()
    assert me.member("p2") is not None  # the victim had the timeout less max_age to refute
    clock.now += 0.002
    me.expire()
    assert me.member("p2") is None  # unrefuted: the detector still works


def test_a_caller_not_in_the_table_is_heard_only_about_itself(fleet):
    clock, (me, victim, attacker), sync = fleet
    stranger = table(9, clock)
    out = sync.answer({"root": "0" * 16, "news": [{"suspect": "p2", "version": victim.own_version(), "age": 1}]},
                      "p9")
    assert me.suspicion("p2") is None and out["news"] == []
    out = sync.answer({"buckets": list(range(64)), "digests": {"p9": stranger.own_version(), "p2": 1},
                       "dead": {"p2": victim.own_version()}}, "p9")
    assert out == {"entries": [], "want": ["p9"], "dead": {}}  # nothing of the table, and no word on p2 taken
    assert me.suspicion("p2") is None
    sync.answer({"entries": [victim.renew(), stranger.own()]}, "p9")  # another's entry is not taken from it
    assert me.version_of("p2") != victim.own_version() and me.member("p9") is not None


def test_a_provider_joining_through_a_member_is_taken_and_learns_the_table(fleet):
    clock, (me, victim, attacker), sync = fleet
    joiner = Sync(table(9, clock), clock=clock)
    exchange(joiner, sync)
    assert me.member("p9") is not None  # taken from its own entry, checked directly
    exchange(joiner, sync)  # now a member: the differences come both ways
    assert joiner.table.root() == me.root() and joiner.table.member("p2") is not None


def test_a_buried_member_calling_again_hears_it_refutes_and_is_taken_back(fleet):
    clock, (me, victim, attacker), sync = fleet
    me.bury({"p2": victim.own_version()})
    assert me.member("p2") is None
    exchange(Sync(victim, clock=clock), sync)
    assert me.member("p2") is not None and me.version_of("p2") == victim.own_version()


def test_tombstones_only_for_members_held_and_at_most_max_peers(fleet):
    clock, (me, victim, attacker), sync = fleet
    for r in range(3):
        sync.answer({"buckets": [], "digests": {}, "dead": {f"n{r}-{i}": FOREVER for i in range(8192)}}, "p3")
    assert me.bury({f"m{i}": 5 for i in range(8192)}) is None
    assert me.digests(list(range(64)))[1] == {}
    small = table(1, clock, max_peers=4)
    others = [table(i, clock) for i in range(10, 20)]
    small.take([t.own() for t in others[:4]])
    for t in others[:4]:
        small.bury({t.name: t.own_version()})
    small.take([t.own() for t in others[4:8]])
    for t in others[4:8]:
        small.bury({t.name: t.own_version()})
    assert sorted(small.digests(list(range(64)))[1]) == sorted(t.name for t in others[4:8])  # the newest four


def test_every_step_of_an_exchange_is_charged_to_an_admitted_opening(fleet):
    clock, (me, victim, attacker), sync = fleet
    config = SimpleNamespace(gossip_interval=1.0, gossip_fanout=3, bootstrap_peers=(), gossip_answers=1,
                             peer_expiry=EXPIRY)
    gossip = Gossip(config, me, Traffic(), FleetMetrics(), None, clock=clock)
    step = {"buckets": list(range(64)), "digests": {}, "dead": {}}
    with pytest.raises(Busy):  # a later step with no opening before it
        gossip.answer(GOSSIP_PATH, step, "p3", admit=lambda: True)
    tokens = [True]
    gossip.answer(GOSSIP_PATH, {"root": "0" * 16, "news": []}, "p3", admit=lambda: bool(tokens and tokens.pop()))
    with pytest.raises(Busy):  # the opening's token is the caller's alone
        gossip.answer(GOSSIP_PATH, step, "p2", admit=lambda: False)
    assert len(json.loads(gossip.answer(GOSSIP_PATH, step, "p3", admit=lambda: False))["entries"]) == 3
    gossip.answer(GOSSIP_PATH, {"entries": []}, "p3", admit=lambda: False)
    with pytest.raises(Busy):  # two later steps per opening, no more
        gossip.answer(GOSSIP_PATH, step, "p3", admit=lambda: False)
    tokens.append(True)
    gossip.answer(GOSSIP_PATH, {"root": "0" * 16, "news": []}, "p3", admit=lambda: bool(tokens and tokens.pop()))
    clock.now += 2 * config.gossip_interval
    with pytest.raises(Busy):  # and within two rounds of it
        gossip.answer(GOSSIP_PATH, step, "p3", admit=lambda: False)

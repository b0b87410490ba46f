"""The fleet's spend book (issue 35): counter sets each provider signs for its own ledger, merged
by the highest valid value, checked against the key pinned for their provider. Real Ed25519 keys
in files as membership.Signer keeps them."""
from __future__ import annotations

import copy
import json

import pytest

from dockpool.errors import InvalidInput
from dockpool_api.fleet.counters import CounterSigner, SpendBook, check_set, month_before, month_of
from dockpool_api.fleet.membership import Signer

DEC = "2026-12"


def signer(tmp_path, name: str) -> CounterSigner:
    path = tmp_path / name / "membership.key"
    path.parent.mkdir()
    Signer(str(path))  # made as membership makes it
    return CounterSigner(str(path))


@pytest.fixture()
def keys(tmp_path):
    return {name: signer(tmp_path, name) for name in ("a", "b", "c", "mallory")}


def used(cpu: float, tx: int = 0) -> dict:
    return {DEC: {"alice": {"cpu_seconds": cpu, "tx_bytes": tx}}}


def test_the_counter_signer_signs_with_the_membership_key(tmp_path):
    path = tmp_path / "membership.key"
    membership = Signer(str(path))
    assert CounterSigner(str(path)).public == membership.public


def test_sets_from_two_providers_add_up_and_taking_one_twice_counts_it_once(keys):
    book = SpendBook("c")
    one = keys["a"].sign("a", 5, used(100.0, 10))
    assert book.take(one, "sets[0]", keys["a"].public) == "taken"
    assert book.take(copy.deepcopy(one), "sets[0]", keys["a"].public) == "held"
    assert book.take(keys["b"].sign("b", 9, used(50.0)), "sets[1]", keys["b"].public) == "taken"
    assert book.others("alice", DEC) == {"cpu_seconds": 150.0, "credits": 0.0, "gpu_seconds": 0.0,
                                         "memory_gib_hours": 0.0, "tx_bytes": 10.0}
    assert book.others("bob", DEC)["cpu_seconds"] == 0.0
    assert book.digest() == {"a": 5, "b": 9}


def test_a_forged_set_is_refused_naming_the_signature_and_changes_nothing(keys):
    book = SpendBook("c")
    book.take(keys["a"].sign("a", 5, used(100.0)), "sets[0]", keys["a"].public)
    forged = keys["mallory"].sign("a", 6, used(0.0))  # mallory writes a's counters down (her own key)
    with pytest.raises(InvalidInput) as refused:
        book.take(forged, "sets[3]", keys["a"].public)
    assert refused.value.field == "sets[3].signature" and "a's membership key" in refused.value.message
    lowered = keys["a"].sign("a", 7, used(100.0))
    lowered["months"] = used(1.0)  # a's own set, its counter lowered after signing
    with pytest.raises(InvalidInput) as refused:
        book.take(lowered, "sets[0]", keys["a"].public)
    assert refused.value.field == "sets[0].signature"
    claimed = {**keys["mallory"].sign("a", 8, used(0.0)), "key": keys["a"].public}  # a's key named, mallory's signature
    with pytest.raises(InvalidInput):
        book.take(claimed, "sets[0]", keys["a"].public)
    assert book.others("alice", DEC)["cpu_seconds"] == 100.0 and book.digest() == {"a": 5}


def test_a_replayed_older_set_loses_to_the_newer_and_a_lowered_ledger_lowers_nothing(keys):
    book = SpendBook("c")
    old = keys["a"].sign("a", 5, used(100.0))
    book.take(keys["a"].sign("a", 6, used(300.0)), "sets[0]", keys["a"].public)
    with pytest.raises(InvalidInput) as refused:
        book.take(old, "sets[0]", keys["a"].public)
    assert refused.value.field == "sets[0].version" and "not newer" in refused.value.message
    # a's ledger went back (restored from a backup): its newer set counts less; the highest counted stays
    book.take(keys["a"].sign("a", 7, used(200.0, 5)), "sets[0]", keys["a"].public)
    assert book.others("alice", DEC)["cpu_seconds"] == 300.0 and book.others("alice", DEC)["tx_bytes"] == 5.0
    assert book.digest() == {"a": 7}  # the newest set is the one passed on


def test_a_provider_that_goes_offline_keeps_its_spend_and_an_unknown_one_is_refused(keys):
    book = SpendBook("c")
    book.take(keys["a"].sign("a", 5, used(100.0)), "sets[0]", keys["a"].public)
    # a expired from the fleet: no live entry, its pinned key still checks what is relayed of it
    assert book.take(keys["a"].sign("a", 6, used(120.0)), "sets[0]", None) == "taken"
    assert book.others("alice", DEC)["cpu_seconds"] == 120.0
    with pytest.raises(InvalidInput) as refused:
        book.take(keys["b"].sign("b", 1, used(1.0)), "sets[1]", None)
    assert refused.value.field == "sets[1].provider"


def test_a_member_with_a_new_key_is_taken_under_it_and_its_old_set_no_longer_passed_on(keys):
    book = SpendBook("c")
    book.take(keys["a"].sign("a", 5, used(100.0)), "sets[0]", keys["a"].public)
    book.take(keys["mallory"].sign("a", 2, used(10.0)), "sets[0]", keys["mallory"].public)  # the fleet verified a's new key
    assert book.digest() == {"a": 2} and book.others("alice", DEC)["cpu_seconds"] == 100.0


def test_own_counters_are_signed_anew_only_when_they_change_and_above_any_version_seen(keys):
    book = SpendBook("a")
    assert book.own(keys["a"], used(10.0), clock_ms=1000)
    assert book.latest["a"]["version"] == 1000 and not book.own(keys["a"], used(10.0), clock_ms=2000)
    assert book.own(keys["a"], used(20.0), clock_ms=1500) and book.latest["a"]["version"] == 1500
    assert book.own(keys["a"], used(30.0), clock_ms=10) and book.latest["a"]["version"] == 1501  # a clock set back
    assert book.others("alice", DEC)["cpu_seconds"] == 0.0  # its own spend is read from its ledger, not summed here
    # after a restart that lost its book, its own newer set comes back from the fleet: the next goes above it
    fresh = SpendBook("a", pins={"a": keys["a"].public})
    assert fresh.take(book.latest["a"], "sets[0]", None) == "held"
    fresh.own(keys["a"], used(30.0), clock_ms=10)
    assert fresh.latest["a"]["version"] == 1502


def test_newer_than_sends_what_the_asker_lacks_own_first_within_the_bytes(keys):
    book = SpendBook("c")
    book.own(keys["c"], used(1.0), clock_ms=50)
    book.take(keys["a"].sign("a", 5, used(100.0)), "sets[0]", keys["a"].public)
    book.take(keys["b"].sign("b", 9, used(50.0)), "sets[1]", keys["b"].public)
    assert [s["provider"] for s in book.newer_than({"a": 5}, 1 << 20)] == ["c", "b"]
    assert [s["provider"] for s in book.newer_than({}, 10)] == ["c"]  # one at least, then the bound
    assert book.newer_than({"a": 5, "b": 9, "c": 50}, 1 << 20) == []


def test_the_book_survives_a_dump_and_load_and_a_tampered_file_loses_the_tampered_set(keys):
    book = SpendBook("c")
    book.own(keys["c"], used(1.0), clock_ms=50)
    book.take(keys["a"].sign("a", 5, used(100.0)), "sets[0]", keys["a"].public)
    again = SpendBook.load("c", copy.deepcopy(book.dump()))
    assert again.digest() == book.digest() and again.others("alice", DEC) == book.others("alice", DEC)
    tampered = copy.deepcopy(book.dump())
    tampered["sets"][1]["version"] = 99
    assert "a" not in SpendBook.load("c", tampered).digest()
    with pytest.raises(ValueError):
        SpendBook.load("b", book.dump())  # another provider's book


@pytest.mark.parametrize("change, field", [
    ({"version": 0}, "sets[0].version"),
    ({"version": True}, "sets[0].version"),
    ({"provider": "a b"}, "sets[0].provider"),
    ({"months": {"2026-13": {}}}, "sets[0].months"),
    ({"months": {"2026-10": {}, "2026-11": {}, "2026-12": {}}}, "sets[0].months"),
    ({"months": {DEC: {"alice": {"cpu_seconds": -1}}}}, f"sets[0].months.{DEC}.alice.cpu_seconds"),
    ({"months": {DEC: {"alice": {"cpu_seconds": float("nan")}}}}, f"sets[0].months.{DEC}.alice.cpu_seconds"),
    ({"months": {DEC: {"alice": {"bitcoins": 1}}}}, f"sets[0].months.{DEC}.alice"),
    ({"months": {DEC: {f"c{i}": {} for i in range(1025)}}}, f"sets[0].months.{DEC}"),
    ({"extra": 1}, "sets[0]"),
])
def test_a_malformed_set_is_refused_naming_the_field(keys, change, field):
    counters = {**keys["a"].sign("a", 5, used(1.0)), **change}
    with pytest.raises(InvalidInput) as refused:
        check_set(counters, "sets[0]")
    assert refused.value.field == field


def test_months_and_pruning():
    assert month_of(1_796_083_200.0) == DEC and month_before("2027-01") == DEC and month_before(DEC) == "2026-11"
    book = SpendBook("c", peaks={"a": {"2026-10": {}, "2026-11": {}, DEC: {}}})
    book.prune(DEC)
    assert sorted(book.peaks["a"]) == ["2026-11", DEC]


def test_one_exchange_swaps_what_each_lacks_and_a_quiet_one_only_a_hash(keys):
    a, b = SpendBook("a"), SpendBook("b")
    a.own(keys["a"], used(10.0), clock_ms=100)
    b.own(keys["b"], used(20.0), clock_ms=100)
    pinned = {name: k.public for name, k in keys.items()}
    differs = b.answer(a.ask(), pinned.get)  # a asks b: its digest's hash
    assert differs["same"] is False and differs["digest"] == {"b": 100}
    swap = a.follow_up(differs, pinned.get)  # a's digest, and its set b lacks
    assert [s["provider"] for s in swap["sets"]] == ["a"]
    answer = b.answer(swap, pinned.get)
    assert answer["taken"] == 1 and [s["provider"] for s in answer["sets"]] == ["b"]
    assert a.follow_up(answer, pinned.get) is None  # nothing left to push
    assert a.others("alice", DEC)["cpu_seconds"] == 20.0 and b.others("alice", DEC)["cpu_seconds"] == 10.0
    quiet = b.answer(a.ask(), pinned.get)
    assert quiet == {"provider": "b", "same": True} and a.follow_up(quiet, pinned.get) is None
    assert len(json.dumps(a.ask())) < 60


def test_an_exchange_of_only_refused_sets_is_refused_naming_the_first(keys):
    book = SpendBook("c")
    forged = keys["mallory"].sign("a", 5, used(0.0))
    with pytest.raises(InvalidInput) as refused:
        book.answer({"digest": {}, "sets": [forged]}, {"a": keys["a"].public}.get)
    assert refused.value.field == "sets[0].signature" and refused.value.detail["refused"][0]["field"] == "sets[0].signature"
    mixed = book.answer({"digest": {}, "sets": [forged, keys["a"].sign("a", 6, used(1.0))]}, {"a": keys["a"].public}.get)
    assert mixed["taken"] == 1 and mixed["refused"][0]["field"] == "sets[0].signature"


@pytest.mark.parametrize("body, field", [
    ({"digest": {}}, "body"),
    ({"digest": [], "sets": []}, "digest"),
    ({"digest": {"a": -1}, "sets": []}, "digest.a"),
    ({"digest": {"a b": 1}, "sets": []}, "digest (a provider)"),
    ({"digest": {}, "sets": {}}, "sets"),
    ({"hash": 7}, "hash"),
])
def test_a_malformed_exchange_is_refused_naming_the_field(body, field):
    with pytest.raises(InvalidInput) as refused:
        SpendBook("c").answer(body, lambda _name: None)
    assert refused.value.field == field


class Peers:
    """What FleetSpend reads of the membership table: its key, and no live member."""

    max_peers = 8

    def __init__(self, public_key: str) -> None:
        self.public_key = public_key

    def member(self, _name: str) -> None:
        return None

    def targets(self, _count: int) -> list:
        return []


def test_a_restarted_provider_signs_its_ledger_again_above_its_old_version_and_knows_its_own_set(tmp_path):
    from dockpool.ledger import Ledger, Reading
    from dockpool_api.fleet.spend import FleetSpend
    from dockpool_api.usage_report import UsageReport

    now = [1_796_083_200.0 + 3600]
    ledger = Ledger(str(tmp_path / "usage.db"), lambda: now[0])

    def pass_with(cpu_s: float) -> None:
        now[0] += 30
        ledger.record([Reading("id-1", "alice", "alice-a-1", "g1", 1024**3, cpu_ns=int(cpu_s * 1e9))])

    key = Signer(str(tmp_path / "membership.key")).public

    def started() -> FleetSpend:
        spend = FleetSpend("a", Peers(key), UsageReport(str(tmp_path / "usage.db"), "a"), str(tmp_path), None,
                           interval=1.0, fanout=3, answers=6, clock=lambda: now[0], prices=lambda _o: {"cpu_hours": 2.0})
        spend.refresh()
        return spend

    pass_with(0)
    pass_with(1800)
    first = started()
    mine = first.book.latest["a"]
    assert mine["months"] == {DEC: {"alice": {"cpu_seconds": 1800.0, "credits": 1.0, "memory_gib_hours": 0.008333}}}
    pass_with(2700)  # a charge written while the service was down
    again = started()
    assert again.book.latest["a"]["months"][DEC]["alice"]["cpu_seconds"] == 2700.0
    assert again.book.latest["a"]["version"] > mine["version"]
    # its older set relayed back by a member: known as its own, not refused, not counted twice
    answer = again.answer("b", {"digest": {}, "sets": [mine]})
    assert answer["refused"] == [] and again.others("alice")["cpu_seconds"] == 0.0

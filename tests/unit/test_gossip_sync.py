"""The exchange between two real membership tables (sync.py): a summary first, then only what
differs. Real signed entries; the transport is a function handing one side's message, as JSON
bytes, to the other side's answer, counting the bytes both ways."""
from __future__ import annotations

import json

import pytest

from dockpool.errors import InvalidInput
from dockpool.networks import NetworkRule
from dockpool_api.fleet.membership import Membership
from dockpool_api.fleet.sync import Sync, parse
from dockpool_api.fleet.wire import parse_entry

ANYWHERE = NetworkRule(allow=("0.0.0.0/0", "10.0.0.0/8"), deny=())


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def table(index: int, clock: Clock) -> Membership:
    return Membership(None, parse_entry({"Name": f"p{index}", "IPV4": f"10.0.0.{index}", "ServerPort": "8088"}),
                      max_peers=1000, rule=ANYWHERE, verify=lambda e: True, clock=clock, checks_per_merge=1000)


class Wire:
    """``a`` opens exchanges with ``b``; every message goes through JSON, and is counted."""

    def __init__(self, a: Sync, b: Sync) -> None:
        self.a, self.b, self.bytes, self.steps = a, b, 0, 0

    def send(self, message: dict) -> dict:
        body = json.dumps(message).encode()
        answer = json.dumps(self.b.answer(json.loads(body), self.a.table.name)).encode()
        self.bytes += len(body) + len(answer)
        self.steps += 1
        return json.loads(answer)

    def exchange(self) -> int:
        self.bytes = self.steps = 0
        self.a.run(self.send)
        return self.bytes


@pytest.fixture()
def pair():
    clock = Clock()
    tables = [table(i, clock) for i in range(1, 41)]
    everyone = [t.own() for t in tables]
    for t in tables:
        t.take(everyone)  # a formed fleet of 40
    a, b = Sync(tables[0], clock=clock), Sync(tables[1], clock=clock)
    return a, b, tables, Wire(a, b)


def test_equal_tables_cost_one_step_of_two_hashes(pair):
    a, b, tables, wire = pair
    assert a.table.root() == b.table.root() and a.table.size() == 40
    assert wire.exchange() < 200 and wire.steps == 1


def test_a_change_sends_that_entry_and_not_the_table(pair):
    a, b, tables, wire = pair
    tables[5].draining = lambda: True
    a.table.take([tables[5].renew()])  # a heard it; b did not
    bytes_ = wire.exchange()
    assert b.table.version_of("p6") == tables[5].own_version() and a.table.root() == b.table.root()
    assert wire.steps == 3 and bytes_ < 4000  # buckets, one bucket's names, one entry (a table of 40 is ~30 KB)
    wire.exchange()
    assert wire.steps == 1  # equal again: b passes the entry on as news for a while, but no digests


def test_news_riding_along_needs_no_digests(pair):
    a, b, tables, wire = pair
    a.spread({"alive": a.table.renew()})
    wire.exchange()
    assert wire.steps == 1 and b.table.version_of("p1") == a.table.own_version()


def test_what_the_other_side_buried_is_suspected_not_revived_and_leaves_at_the_timeout(pair):
    a, b, tables, wire = pair
    b.table.bury({"p9": tables[8].own_version()})  # dead on b's side
    wire.exchange()
    assert b.table.version_of("p9") is None  # not revived by a's live entry
    held = a.table.suspicion("p9")  # b's word alone buries nobody on a: a suspicion, dated at most max_age back
    assert held is not None and held["version"] == tables[8].own_version()
    assert Clock.now - held["since"] == a.max_age
    Clock.now += a.table.expiry - a.max_age
    a.table.expire()
    assert a.table.version_of("p9") is None
    wire.exchange()
    assert a.table.root() == b.table.root()


def test_a_member_told_it_is_dead_refutes_with_a_newer_version(pair):
    a, b, tables, wire = pair
    b.table.bury({"p1": a.table.own_version()})  # b holds a (p1) dead
    before = a.table.own_version()
    wire.exchange()
    assert a.table.own_version() > before  # a signed anew on hearing it
    assert len(a.news) == 1  # and will spread it with its next exchanges


def test_a_suspicion_spreads_and_the_suspected_refutes_it_when_it_hears(pair):
    a, b, tables, wire = pair
    news = a.table.suspect("p2", b.table.own_version())  # a suspects b itself
    a.spread(news)
    before = b.table.own_version()
    wire.exchange()
    assert b.table.own_version() > before  # b heard it in a's opening, refuted, and its answer carried it
    assert a.table.version_of("p2") == b.table.own_version() and a.table.suspicion("p2") is None


@pytest.mark.parametrize(("message", "field"), [
    ([], "request"),
    ({"root": "XYZ"}, "request.root"),
    ({"root": "0" * 16, "news": [{"suspect": "x", "version": 0, "age": 1}]}, "request.news[0].version"),
    ({"root": "0" * 16, "news": [{"what": 1}]}, "request.news[0]"),
    ({"buckets": [64], "digests": {}}, "request.buckets[0]"),
    ({"buckets": [1], "digests": {"p1": "7"}}, "request.digests.p1"),
    ({"want": [""]}, "request.want[0]"),
])
def test_a_malformed_step_is_refused_naming_the_field(message, field):
    with pytest.raises(InvalidInput) as error:
        parse(message, "request")
    assert error.value.field == field

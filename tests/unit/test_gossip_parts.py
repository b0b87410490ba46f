"""The pure parts of the fleet's exchange: table summaries (digest.py), the news queue with its
retransmit limit (broadcasts.py) and the failure detector's suspicions (suspicion.py)."""
from __future__ import annotations

import random

from dockpool_api.fleet.broadcasts import Broadcasts, retransmit_limit
from dockpool_api.fleet.digest import BUCKETS, Summary, compare
from dockpool_api.fleet.suspicion import Suspicions


def summary(pairs: dict[str, int]) -> Summary:
    out = Summary()
    for name, version in pairs.items():
        out.put(name, version)
    return out


def test_equal_tables_have_equal_roots_whatever_the_order_and_history():
    pairs = {f"p{i}": 1000 + i for i in range(500)}
    shuffled = list(pairs.items())
    random.Random(1).shuffle(shuffled)
    other = Summary()
    other.put("gone", 5)
    for name, version in shuffled:
        other.put(name, version - 1)  # an older version first, renewed after
        other.put(name, version)
    other.drop("gone")
    assert summary(pairs).root() == other.root() and summary(pairs).buckets() == other.buckets()
    assert len(other) == 500


def test_one_newer_version_differs_in_one_bucket_and_its_names_say_which():
    pairs = {f"p{i}": 1000 + i for i in range(500)}
    mine, theirs = summary(pairs), summary({**pairs, "p7": 5000, "p9": 1})
    assert mine.root() != theirs.root()
    buckets = mine.differing(theirs.buckets())
    assert 1 <= len(buckets) <= 2
    send, want = compare(mine.digests(buckets), theirs.digests(buckets))
    assert send == ["p9"] and want == ["p7"]  # they hold p9 older; they hold p7 newer
    assert len(mine.digests(buckets)) < 500 / BUCKETS * 4  # only the differing buckets' names


def test_a_summary_from_a_stranger_differs_everywhere():
    assert Summary().differing(["0" * 16]) == list(range(BUCKETS))


def test_news_goes_out_a_bounded_number_of_times_least_sent_first_newest_replacing():
    queue = Broadcasts()
    limit = retransmit_limit(1000)
    assert limit == 16 and retransmit_limit(100) == 12 and retransmit_limit(10) == 8
    queue.put("a", {"alive": "a1"})
    queue.put("a", {"alive": "a2"})  # newer news of a: the older is dropped
    assert queue.take(10_000, 1000) == [{"alive": "a2"}]
    queue.put("b", {"alive": "b1"})
    assert queue.take(10_000, 1000) == [{"alive": "b1"}, {"alive": "a2"}]  # the least sent first
    sent = 2
    while len(queue):  # bounded: the queue empties at the limit
        assert sent <= limit
        queue.take(10_000, 1000)
        sent += 1
    assert sent == limit + 1 and queue.take(10_000, 1000) == []


def test_news_fits_the_byte_budget():
    queue = Broadcasts()
    queue.put("big", {"alive": "x" * 500})
    queue.put("small", {"alive": "y"})
    assert queue.take(100, 10) == [{"alive": "y"}]


def test_a_suspicion_dies_at_its_timeout_from_when_it_was_raised_unless_refuted():
    held = Suspicions(timeout=30.0)
    assert held.raise_("x", 7, now=100.0, age=10.0)  # raised 10 s ago elsewhere
    assert not held.raise_("x", 7, now=101.0)  # not news again
    assert held.dead(119.0) == [] and [s.name for s in held.dead(120.0)] == ["x"]
    held.refuted("x", 7)  # the same version: no refutation
    assert "x" in held
    held.refuted("x", 8)  # a newer signed version: refuted
    assert "x" not in held and held.dead(1000.0) == []
    assert held.raise_("y", 1, now=0.0, age=1e9) and [s.name for s in held.dead(30.0)] == ["y"]  # age bounded

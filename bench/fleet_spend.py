"""One budget across the fleet (issue 35): how many rounds a spent budget takes to reach every
member, the overdraft that delay allows, and the bytes the spend exchange adds per round.

A fleet of N members simulated in one process with the real code of the exchange (SpendBook's
ask, answer and follow-up, real Ed25519 signatures and checks, the JSON each message would
carry); the network is the only part left out (a real three-member fleet is measured by
tests/integration/test_budgets.py). Each round every member exchanges with ``fanout`` members
chosen at random (``gossip_fanout``, 3 by default; 1 shown beside it), pulls answered from the
state at the round's start (nothing relayed twice in one round). One member then signs a set in which a client's budget is spent.

Measured: rounds until every member holds it (p50, p95 over the repeats); the overdraft as
member-rounds (the sum over members of the rounds each ran the client on before knowing,
plus the round to sign and the round to the enforcing pass), which times the client's rate per
member and the interval gives CPU time; bytes each member sends and receives per round, in a
quiet fleet (digests only) and in a round where every member's counters changed. Goal (the
issue's): every member refuses within 3 rounds of the spend being signed."""
from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import percentile, save, table
from dockpool_api.fleet.counters import ANSWER_BYTES

SIZES = (3, 50, 1000)
REPEATS = 5
FANOUTS = (1, 3)
RUN_FANOUT = 3  # gossip_fanout's default (the provider_api role's): what providers run
MONTH = "2026-12"
GOAL_ROUNDS = 3


def _members(count: int, work: Path) -> tuple[list[Any], dict[str, str]]:
    from dockpool_api.fleet.counters import CounterSigner
    from dockpool_api.fleet.membership import Signer

    signers = []
    for index in range(count):
        folder = work / f"p{index}"
        folder.mkdir(parents=True, exist_ok=True)
        Signer(str(folder / "membership.key"))
        signers.append(CounterSigner(str(folder / "membership.key")))
    return signers, {f"p{i}": s.public for i, s in enumerate(signers)}


def _quiet_fleet(signers: list[Any], spend: float) -> list[Any]:
    """Every member holding every member's set, as after a while without news."""
    from dockpool_api.fleet.counters import SpendBook

    sets = [s.sign(f"p{i}", 1000, {MONTH: {"alice": {"cpu_seconds": spend}}}) for i, s in enumerate(signers)]
    books = []
    for index in range(len(signers)):
        book = SpendBook(f"p{index}")
        for other, counters in enumerate(sets):
            book.latest[f"p{other}"] = counters
            book.pins[f"p{other}"] = counters["key"]
            book.peaks[f"p{other}"] = {MONTH: {"alice": {"cpu_seconds": spend}}}
        books.append(book)
    return books


def _size(message: Any) -> int:
    return len(json.dumps(message, separators=(",", ":")))


def _round(books: list[Any], keys: dict[str, str], fanout: int, rng: random.Random) -> list[int]:
    """One round of every member's exchanges (spending.FleetSpend._exchange_with's steps); the
    bytes each member sent and received. Pulls are answered from the state at the round's start."""
    count = len(books)
    pairs = [(m, t) for m in range(count) for t in rng.sample([i for i in range(count) if i != m], min(fanout, count - 1))]
    moved = [0] * count

    def carried(m: int, t: int, *messages: Any) -> None:
        size = sum(_size(message) for message in messages if message is not None)
        moved[m] += size
        moved[t] += size

    swaps = []
    for m, t in pairs:
        asked = books[m].ask()
        answer = books[t].answer(asked, keys.get)
        swap = books[m].follow_up(answer, keys.get)
        carried(m, t, asked, answer, swap)
        if swap is not None:
            swaps.append((m, t, swap, books[t].newer_than(swap["digest"], ANSWER_BYTES)))
    for m, t, swap, pulled in swaps:
        books[t].take_all(swap["sets"], keys.get)
        answer = {"provider": f"p{t}", "sets": pulled, "digest": books[t].digest(), "taken": 0, "refused": []}
        books[m].take_all(pulled, keys.get)
        carried(m, t, answer)
    return moved


def one(count: int, fanout: int, repeats: int, work: Path) -> dict[str, Any]:
    signers, keys = _members(count, work)
    rng = random.Random(count * 31 + fanout)
    rounds, member_rounds, quiet, busy = [], [], [], []
    for repeat in range(repeats):
        books = _quiet_fleet(signers, 1.0)
        quiet.append(statistics.fmean(_round(books, keys, fanout, rng)))
        spender = rng.randrange(count)
        books[spender].own(signers[spender], {MONTH: {"alice": {"cpu_seconds": 3600.0}}}, clock_ms=2000 + repeat)
        knows_at = {spender: 0}
        for number in range(1, 64):  # bounded: a set reaches 1,000 members in about a dozen rounds
            _round(books, keys, fanout, rng)
            for index, book in enumerate(books):
                if index not in knows_at and book.others("alice", MONTH)["cpu_seconds"] >= 3600.0 + (count - 2):
                    knows_at[index] = number
            if len(knows_at) == count:
                break
        rounds.append(max(knows_at.values()))
        # each member runs her instances until it knows, plus the round to sign and the enforcing pass
        member_rounds.append(sum(r + 2 for i, r in knows_at.items() if i != spender))
        if repeat == 0:  # a busy round: every member's counters changed since the last
            for index, book in enumerate(books):
                book.own(signers[index], {MONTH: {"alice": {"cpu_seconds": 4000.0 + index}}}, clock_ms=10_000)
            busy.append(statistics.fmean(_round(books, keys, fanout, rng)))
    return {"members": count, "fanout": fanout, "rounds_p50": percentile(rounds, 50), "rounds_p95": percentile(rounds, 95),
            "member_rounds_p50": percentile(member_rounds, 50), "quiet_bytes_per_member": round(statistics.fmean(quiet)),
            "busy_bytes_per_member": round(statistics.fmean(busy)), "met": percentile(rounds, 95) <= GOAL_ROUNDS}


def run(sizes: tuple[int, ...] = SIZES, fanouts: tuple[int, ...] = FANOUTS, repeats: int = REPEATS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dockpool-spend-") as work:
        rows = [one(count, fanout, repeats, Path(work) / f"n{count}") for count in sizes for fanout in fanouts]
    used = [r for r in rows if r["fanout"] == RUN_FANOUT]
    return {"sizes": rows, "met": all(r["met"] for r in used)}


def report(result: dict[str, Any]) -> str:
    rows = [[r["members"], r["fanout"], r["rounds_p50"], r["rounds_p95"], r["member_rounds_p50"],
             r["quiet_bytes_per_member"], r["busy_bytes_per_member"]] for r in result["sizes"]]
    return (table(rows, ["members", "fan-out", "rounds to all p50", "p95", "overdraft member-rounds p50",
                         "bytes/member/round quiet", "busy"])
            + "\noverdraft in CPU seconds = member-rounds x the client's CPU rate per member x the interval"
            + f"\ngoal: every member knows within {GOAL_ROUNDS} rounds (fan-out {RUN_FANOUT}, what providers run): "
            + ("met" if result["met"] else "NOT met"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    result = run(tuple(args.sizes), repeats=args.repeats)
    save("fleet_spend", result)
    print(report(result))


if __name__ == "__main__":
    main()

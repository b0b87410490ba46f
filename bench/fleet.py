"""A local fleet of 10, 30 and 50 real API processes (a chain: each knows one peer):
exchange rounds until every table holds all N, bytes each provider sends per round once the
fleet is quiet, time until 20% killed with SIGKILL leave every live table, and until a
restarted one is back in all. Goals: complete within ceil(log2 N) + 2 rounds; a quiet
provider sends at most 2 KiB a round (a summary per exchange, not its table); the dead gone
within the expiry plus 3 intervals. The same code at 100 to 5,000 members, simulated in one
process: bench/fleet_sim.py."""
from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional

import requests

from bench.common import save, table

SIZES = (10, 30, 50)
INTERVAL = 5.0  # the provider_api role's defaults: what an operator's fleet runs with
EXPIRY = 60.0
FANOUT = 3
QUIETEN_ROUNDS = 6  # a join's news is passed on 4 * ceil(log10(N + 1)) times, several per exchange
QUIET_GOAL = 2048  # bytes a quiet provider sends per round (issue 32's goal at N = 1,000)


def tables(urls: list[str]) -> list[Optional[set[str]]]:
    """Each provider's served table as a set of peer URLs (None: it did not answer)."""
    def one(url: str) -> Optional[set[str]]:
        try:
            entries = requests.get(f"{url}/v1/peers", timeout=5).json()["ip_address"]
        except (requests.RequestException, ValueError, KeyError):
            return None
        return {f"http://{e['IPV4']}:{e['ServerPort']}" for e in entries[1:]}

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, urls))


def wait_for(condition: Callable[[], bool], limit: float, step: float) -> Optional[float]:
    """Seconds until ``condition`` holds, polled every ``step``; None after ``limit`` seconds."""
    started = time.monotonic()
    while time.monotonic() - started < limit:  # bounded
        if condition():
            return time.monotonic() - started
        time.sleep(step)
    return None


def fleet_status(urls: list[str]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda u: requests.get(f"{u}/v1/fleet", timeout=5).json(), urls))


def one_size(count: int, interval: float, expiry: float, work: Path) -> dict[str, Any]:
    from dockpool_dev import localfleet

    gossip = {"gossip_interval": interval, "gossip_fanout": FANOUT, "peer_expiry": expiry}
    directory = work / f"n{count}"
    fleet = localfleet.start(count, directory, gossip, chain_when_up=True)  # rounds count from the chain's linking
    try:
        urls = [p["url"] for p in fleet["providers"]]
        everyone = set(urls)
        step = min(0.25, interval / 4)

        def complete() -> bool:
            return all(t is not None and t | {u} == everyone for u, t in zip(urls, tables(urls)))

        converge = wait_for(complete, 60 * interval, step)
        # Traffic, once converged and the news of the joins has run out (a few rounds): what each
        # provider sent in its last whole round, three rounds running.
        time.sleep(QUIETEN_ROUNDS * interval)
        samples: list[list[int]] = []
        for _ in range(3):
            time.sleep(interval)
            samples.append([s["bytes_sent_last_round"] for s in fleet_status(urls)])
        table_bytes = statistics.median(len(requests.get(f"{u}/v1/peers", timeout=5).content) for u in urls[:5])
        per_provider = [statistics.mean(column) for column in zip(*samples)]
        answers = 2 * FANOUT  # the answer cap (gossip_answers 0: twice the fan-out)
        # Kill 20% with SIGKILL (never the first: the survivors' chain of bootstrap peers does not matter now).
        victims = sorted(random.Random(count).sample(range(1, count), max(1, count // 5)))
        for index in victims:
            localfleet.kill(fleet["providers"][index]["pid"])
        dead = {urls[i] for i in victims}
        live = [u for i, u in enumerate(urls) if i not in victims]
        gone = wait_for(lambda: all(t is not None and not (t & dead) for t in tables(live)), expiry + 20 * interval, step)
        # One of them comes back.
        back_index = victims[0]
        localfleet.restart(directory, back_index)
        localfleet.wait_up(urls[back_index])
        again = live + [urls[back_index]]
        back = wait_for(lambda: all(t is not None and urls[back_index] in (t | {u}) for u, t in zip(again, tables(again))),
                        expiry + 20 * interval, step)
    finally:
        localfleet.stop(directory)
    rounds_goal = math.ceil(math.log2(count)) + 2
    return {
        "providers": count, "interval_s": interval, "expiry_s": expiry, "fanout": FANOUT,
        "converge_s": converge, "converge_rounds": None if converge is None else round(converge / interval, 2),
        "rounds_goal": rounds_goal,
        "table_bytes": table_bytes, "sent_per_round_mean": statistics.mean(per_provider),
        "sent_per_round_max": max(per_provider), "sent_bound": (FANOUT + answers) * table_bytes, "quiet_goal": QUIET_GOAL,
        "killed": len(victims), "gone_s": gone, "gone_goal_s": expiry + 3 * interval,
        "restarted_back_s": back, "restarted_back_rounds": None if back is None else round(back / interval, 2),
    }


def run(sizes: tuple[int, ...] = SIZES, interval: float = INTERVAL, expiry: float = EXPIRY) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-fleet-"))
    try:
        rows = [one_size(n, interval, expiry, work) for n in sizes]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in rows:
        r["met_rounds"] = r["converge_rounds"] is not None and r["converge_rounds"] <= r["rounds_goal"]
        r["met_traffic"] = r["sent_per_round_max"] <= min(r["sent_bound"], QUIET_GOAL)
        r["met_expiry"] = r["gone_s"] is not None and r["gone_s"] <= r["gone_goal_s"]
        r["correct"] = None not in (r["converge_s"], r["gone_s"], r["restarted_back_s"])
    per_entry = [r["sent_per_round_mean"] / max(1, r["table_bytes"]) for r in rows]
    return {"sizes": rows, "sent_tables_per_round": [round(x, 2) for x in per_entry],
            "correct": all(r["correct"] for r in rows),
            "met": all(r["met_rounds"] and r["met_traffic"] and r["met_expiry"] for r in rows)}


def _num(value: Optional[float]) -> Any:
    return "never" if value is None else value


def report(result: dict[str, Any]) -> str:
    rows = [[r["providers"], _num(r["converge_rounds"]), r["rounds_goal"], _num(r["converge_s"]),
             f"{r['sent_per_round_mean'] / 1024:.1f}", f"{r['sent_per_round_max'] / 1024:.1f}",
             f"{min(r['sent_bound'], QUIET_GOAL) / 1024:.1f}", r["killed"], _num(r["gone_s"]), r["gone_goal_s"],
             _num(r["restarted_back_s"])] for r in result["sizes"]]
    first = result["sizes"][0]
    return (table(rows, ["N", "rounds to all", "goal", "seconds", "KiB sent/round quiet mean", "max", "goal",
                         "killed", "gone s", "goal s", "restarted back s"])
            + f"\ninterval {first['interval_s']:g} s, expiry {first['expiry_s']:g} s, fan-out {first['fanout']}; "
            f"tables sent per round per provider: {result['sent_tables_per_round']}\n"
            f"all tables complete, dead gone and the restarted back: {'yes' if result['correct'] else 'NO'}; "
            f"goals met: {'yes' if result['met'] else 'NO'}")


def chart(result: dict[str, Any], path: Path) -> None:
    from bench.charts import line_chart

    sizes = [r["providers"] for r in result["sizes"]]
    line_chart(path, "Fleet membership (summary-first gossip, SWIM failure detection)", "providers", "exchange rounds",
               {"rounds until every table holds all": (sizes, [r["converge_rounds"] or 0 for r in result["sizes"]]),
                "goal: ceil(log2 N) + 2": (sizes, [r["rounds_goal"] for r in result["sizes"]]),
                "rounds until a restarted one is back everywhere": (sizes, [r["restarted_back_rounds"] or 0
                                                                           for r in result["sizes"]])})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--interval", type=float, default=INTERVAL)
    parser.add_argument("--expiry", type=float, default=EXPIRY)
    args = parser.parse_args()
    result = run(tuple(args.sizes), args.interval, args.expiry)
    save("fleet", result)
    print(report(result))
    print(json.dumps(result["sizes"], indent=1))


if __name__ == "__main__":
    main()

"""Metering: the metering pass's cost at 10, 50 and 100 instances, against the watchdog's disk
pass over the same instances in the same run (goal: linear, and at most 1 ms per instance
added); the usage ledger's bytes per instance-day, as written and once rolled up by hour; and
`GET /v1/usage` over a month of 100 instances' rows on a real API process, against the same
route over an empty ledger (p50 of 20)."""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench.common import save, table

SIZES = (10, 50, 100)
REPEATS = 3
DAY_PASSES = 2880  # a pass every 30 s


def passes(sizes: tuple[int, ...], repeats: int, work: Path) -> list[dict[str, Any]]:
    """Per size: the disk pass and the metering pass, each the median of ``repeats``."""
    from dockpool.engine import connect
    from dockpool.instances import InstanceManager
    from dockpool.ledger import Ledger
    from dockpool.metering import meter
    from dockpool.policy import Policy, PortRange
    from dockpool.usage import run_pass
    from dockpool_dev.ssh import make_keypair

    client = connect()
    _, public_key = make_keypair(work)
    manager = InstanceManager(client, Policy(port_range=PortRange(45000, 45999), bind_address="127.0.0.1",
                                             shared_cores_min=0))
    ledger = Ledger(str(work / "usage.db"))
    rows, made = [], []
    try:
        for size in sorted(sizes):
            def create(name: str) -> str:
                spec = manager.spec({"name": name, "public_key": public_key, "memory": "32m", "cpu_share": 0.05})
                return manager.create(spec, wait=False)["id"]

            with ThreadPoolExecutor(4) as pool:
                made += list(pool.map(create, [f"bench-meter-{i}" for i in range(len(made), size)]))
            disk, metered = [], []
            for _ in range(repeats + 1):  # the first metering pass only takes the readings
                started = time.perf_counter()
                entries = list(run_pass(client, str(work / "usage.json"))["instances"].values())
                disk.append(time.perf_counter() - started)
                started = time.perf_counter()
                meter(ledger, entries)
                metered.append(time.perf_counter() - started)
            disk_s, meter_s = statistics.median(disk[1:]), statistics.median(metered[1:])
            rows.append({"instances": size, "disk_pass_s": disk_s, "metering_s": meter_s,
                         "disk_ms_per_instance": disk_s / size * 1000, "metering_ms_per_instance": meter_s / size * 1000,
                         "ratio": meter_s / disk_s})
    finally:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(manager.remove, made))
        ledger.close()
    return rows


def ledger_bytes(work: Path, instances: int, day_passes: int = DAY_PASSES) -> dict[str, Any]:
    """Bytes per instance-day of a ledger written pass by pass (``day_passes`` of a day's 2880,
    scaled to the day), then rolled up by hour."""
    from dockpool.ledger import Ledger, Reading

    now = [time.time() - 3 * 86400]
    step_s = 86400 / day_passes
    path = str(work / "size.db")
    ledger = Ledger(path, lambda: now[0])
    for step in range(day_passes):
        now[0] += step_s
        ledger.record([Reading(f"id-{i}", "alice", f"alice-p-{i}", "g", 64 * 1024**2, cpu_ns=step * 10**8,
                               rx_bytes=step * 5000, tx_bytes=step * 9000) for i in range(instances)])
    ledger.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = os.path.getsize(path)
    now[0] += 2 * 86400
    ledger.roll_up()
    ledger.db.execute("VACUUM")
    ledger.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rolled = os.path.getsize(path)
    ledger.close()
    scale = DAY_PASSES / day_passes  # a row a pass: what a whole day of passes writes
    return {"instances": instances, "passes": day_passes, "raw_bytes_per_instance_day": raw / instances * scale,
            "hourly_bytes_per_instance_day": rolled / instances}


def month_of_passes(ledger: Any, clock: list[float], instances: int, now: float, day_passes: int = DAY_PASSES) -> None:
    """What the watchdog writes in a month, pass by pass: 29 days of a pass an hour (one row an
    instance and hour, as the roll-up leaves them), then the last day's ``day_passes`` (every 30 s)."""
    from dockpool.ledger import Reading
    from dockpool_dev.api_config import TOKENS

    owners = sorted(TOKENS)
    moments = [now - 30 * 86400 + h * 3600 for h in range(29 * 24)] + [now - 86400 + p * 86400 / day_passes
                                                                         for p in range(day_passes)]
    for step, moment in enumerate(moments):
        clock[0] = moment
        ledger.record([Reading(f"id-{i}", owners[i % 3], f"{owners[i % 3]}-p-{i}", "g", 64 * 1024**2, cpu_ns=step * 10**8,
                               rx_bytes=step * 5000, tx_bytes=step * 9000) for i in range(instances)])
    clock[0] = now
    ledger.roll_up()


def usage_latency(work: Path, instances: int, queries: int, day_passes: int = DAY_PASSES) -> dict[str, Any]:
    """GET /v1/usage on a real API process: a month of ``instances`` instances' passes, against an
    empty ledger."""
    from dockpool.ledger import Ledger
    from dockpool_dev.api_config import TOKENS, make_config
    from dockpool_dev.api_process import api_process

    now = time.time()
    result: dict[str, Any] = {"instances": instances}
    clock = [now]
    for label, filled in (("empty", False), ("month", True)):
        folder = work / label
        folder.mkdir()
        settings = make_config(folder)
        clock[0] = now
        ledger = Ledger(settings["ledger_file"], lambda: clock[0])
        if filled:
            month_of_passes(ledger, clock, instances, now, day_passes)
            result["rows"] = ledger.db.execute("SELECT COUNT(*) FROM usage").fetchone()[0]
        ledger.close()
        with api_process(folder, settings) as url:
            for who in ("ops", "alice"):
                auth = {"Authorization": f"Bearer {TOKENS[who]}"}
                times = []
                for _ in range(queries):
                    started = time.perf_counter()
                    answer = requests.get(f"{url}/v1/usage", headers=auth, params={"since": str(int(now - 30 * 86400))},
                                          timeout=60)
                    times.append(time.perf_counter() - started)
                    assert answer.status_code == 200, answer.text
                result[f"{label}_{'admin' if who == 'ops' else 'client'}_p50_ms"] = statistics.median(times) * 1000
    for who in ("admin", "client"):
        result[f"{who}_ratio"] = result[f"month_{who}_p50_ms"] / result[f"empty_{who}_p50_ms"]
    return result


def run(sizes: tuple[int, ...] = SIZES, repeats: int = REPEATS, ledger_instances: int = 10, usage_instances: int = 100,
        queries: int = 20, day_passes: int = DAY_PASSES) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-metering-"))
    rows = passes(sizes, repeats, work)
    per = [r["metering_ms_per_instance"] for r in rows]
    linear = max(per) <= 2 * min(per)
    cheap = max(per) <= 1.0
    return {"sizes": rows, "ledger": ledger_bytes(work, ledger_instances, day_passes),
            "usage": usage_latency(work, usage_instances, queries, day_passes),
            "linear": linear, "cheap": cheap, "met": linear and cheap}


def report(result: dict[str, Any]) -> str:
    rows = [[r["instances"], r["disk_pass_s"], r["metering_s"], r["disk_ms_per_instance"], r["metering_ms_per_instance"],
             f"{r['ratio']:.2f}x"] for r in result["sizes"]]
    ledger, usage = result["ledger"], result["usage"]
    return (table(rows, ["instances", "disk pass s", "metering s", "disk ms/inst", "metering ms/inst", "metering/disk"])
            + f"\ngoal: linear ({'yes' if result['linear'] else 'NO'}) and at most 1 ms per instance added "
              f"({'yes' if result['cheap'] else 'NO'}): {'met' if result['met'] else 'NOT met'}"
            + f"\nledger: {ledger['raw_bytes_per_instance_day'] / 1024:.1f} KiB per instance-day as written (a row a "
              f"pass), {ledger['hourly_bytes_per_instance_day'] / 1024:.1f} KiB once rolled up by hour "
              f"({ledger['instances']} instances, {ledger['passes']} passes over a day)"
            + f"\nGET /v1/usage over a month of {usage['instances']} instances ({usage.get('rows', 0)} rows), p50: "
              f"every client's {usage['month_admin_p50_ms']:.1f} ms against {usage['empty_admin_p50_ms']:.1f} ms on an "
              f"empty ledger ({usage['admin_ratio']:.1f}x); one client's {usage['month_client_p50_ms']:.1f} ms against "
              f"{usage['empty_client_p50_ms']:.1f} ms ({usage['client_ratio']:.1f}x)")


def chart(result: dict[str, Any], path: Path) -> None:
    from bench.charts import line_chart

    sizes = [r["instances"] for r in result["sizes"]]
    line_chart(path, "Metering on the watchdog's pass", "instances", "milliseconds per instance",
               {"metering (cgroup and /proc reads, one transaction)": (sizes, [r["metering_ms_per_instance"]
                                                                                for r in result["sizes"]]),
                "the disk pass it rides on": (sizes, [r["disk_ms_per_instance"] for r in result["sizes"]])})


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    result = run()
    save("metering", result)
    print(report(result))


if __name__ == "__main__":
    main()

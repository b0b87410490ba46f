"""Run every benchmark: ``python -m bench [--smoke] [--only NAME ...]``.

Each writes bench/results/<name>.json and prints its table with the goal beside
it; the scaling ones draw a PNG chart next to their results. Everything talks to
the local engine and loopback only, with bounded counts and times. ``--smoke``
runs each with tiny counts (what the test suite does so they cannot rot).
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Callable

from bench import (
    common,
    create_latency,
    drains,
    fleet,
    fleet_sim,
    fleet_spend,
    metering,
    moves,
    parallel_create,
    provisioning,
    replicas,
    runtimes,
    speed,
    throughput,
    watchdog_scaling,
)

# name: (module, full arguments, smoke arguments)
BENCHMARKS: dict[str, tuple[Any, dict, dict]] = {
    "create_latency": (create_latency, {"n": 20}, {"n": 2}),
    "parallel_create": (parallel_create, {"levels": (1, 5, 20)}, {"levels": (1, 2)}),
    "throughput": (throughput, {"seconds": 10}, {"levels": (1, 2), "seconds": 3}),
    "speed": (speed, {"n": 5}, {"n": 1}),
    "watchdog_scaling": (watchdog_scaling, {"sizes": (10, 50, 100)}, {"sizes": (2, 4), "repeats": 1}),
    "runtimes": (runtimes, {"n": 10}, {"n": 1, "jobs": 1, "mib": 16}),
    "fleet": (fleet, {"sizes": (10, 30, 50)}, {"sizes": (5,), "interval": 0.5, "expiry": 4.0}),
    "fleet_sim": (fleet_sim, {"sizes": (100, 1000, 5000)}, {"sizes": (100,)}),
    "fleet_spend": (fleet_spend, {"sizes": (3, 50, 1000), "repeats": 3}, {"sizes": (3, 10), "repeats": 1}),
    "moves": (moves, {"payloads_mib": (256, 1024)}, {"payloads_mib": (16,), "repeats": 1}),
    "drains": (drains, {"sizes": (1, 5, 10)}, {"sizes": (1,), "payload_mib": 8}),
    "replicas": (replicas, {"size_mib": 1024}, {"size_mib": 32, "changes_mib": (2, 8), "pauses": 2}),
    "metering": (metering, {}, {"sizes": (2,), "repeats": 1, "ledger_instances": 2, "usage_instances": 3, "queries": 2,
                                "day_passes": 48}),
    "provisioning": (provisioning, {"fleets": (1, 2, 4)}, {"fleets": (1,), "tags": "role::iaas_user"}),
}


def run_one(name: str, smoke: bool) -> dict[str, Any]:
    module, full, small = BENCHMARKS[name]
    started = time.perf_counter()
    result = module.run(**(small if smoke else full))
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["smoke"] = smoke
    if not smoke:
        common.save(name, result)
        chart: Callable | None = getattr(module, "chart", None)
        if chart is not None:
            chart(result, common.RESULTS / f"{name}.png")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny counts, results not saved")
    parser.add_argument("--only", nargs="*", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    args = parser.parse_args()
    print(f"machine: {common.machine()}")
    for name in args.only:
        print(f"\n== {name}: {BENCHMARKS[name][0].__doc__.splitlines()[0]}")
        result = run_one(name, args.smoke)
        print(f"{BENCHMARKS[name][0].report(result)}\n({result['elapsed_s']} s)")
    if not args.smoke:
        write_latest()


def write_latest() -> None:
    """bench/results/latest.txt: every saved result's table with when and where it ran,
    the text docs/performance.md quotes."""
    parts = []
    for name, (module, _, _) in BENCHMARKS.items():
        result = common.load(name)
        if result is not None:
            parts.append(f"== {name} ({result['when']}, {result.get('elapsed_s', '?')} s, {result['machine']})\n{module.report(result)}")
    (common.RESULTS / "latest.txt").write_text("\n\n".join(parts) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Draining a provider into its fleet: seconds until every instance of N runs on the other
member, against the same N instances moved one after the other by their client
(`dockpool move`, the real CLI), between the same two providers on separate engines. Each
instance holds the same payload of random bytes. Also the longest time a client was cut off
during the drain. Goal: the drain takes no longer than the sequential moves (it moves two
at once)."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import save, table

SIZES = (1, 5, 10)
PAYLOAD_MIB = 64


def run(sizes: tuple[int, ...] = SIZES, payload_mib: int = PAYLOAD_MIB) -> dict[str, Any]:
    import docker

    from dockpool_dev.api_config import TOKENS, remove_client_instances
    from dockpool_dev.cli import cli
    from dockpool_dev.ssh import make_keypair
    from dockpool_dev.two_providers import SOURCE, TARGET, two_providers

    engine = docker.from_env(timeout=600)
    alice, ops = ({"Authorization": f"Bearer {TOKENS[who]}"} for who in ("alice", "ops"))
    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-drains-"))
    key, _ = make_keypair(work)
    home = work / "client"
    rows = []
    most = max(sizes)
    try:
        with two_providers(work, limits={"instances_per_client": most, "max_memory": "128m", "default_memory": "64m"},
                           target_ports=f"46000-{46000 + 2 * most - 1}") as (_source, _target, engine2):
            for url in (SOURCE, TARGET):
                assert cli(home, "login", url, "--token", TOKENS["alice"]).returncode == 0

            def make(n: int) -> list[str]:
                names = []
                for _ in range(n):
                    made = cli(home, "up", "--provider", SOURCE, "--key", str(key), "--memory-reservation", "64m",
                               "--no-check", "--json")  # as its client makes it: the CLI knows where it is
                    assert made.returncode == 0, made.stderr
                    view = json.loads(made.stdout)
                    engine.containers.get(view["id"]).exec_run(
                        ["dd", "if=/dev/urandom", "of=/root/payload", "bs=1M", f"count={payload_mib}"])
                    names.append(view["name"])
                os.sync()  # both timings start with the payloads on disk, not in the page cache
                return names

            def clear_target() -> None:
                for container in engine2.containers.list(all=True, filters={"label": "dockpool.owner=alice"}):
                    requests.delete(f"{TARGET}/v1/instances/{container.labels['dockpool.name']}", headers=alice, timeout=120)

            for n in sizes:
                names = make(n)
                started = time.perf_counter()
                for name in names:
                    moved = cli(home, "move", name, "--to", TARGET, "--key", str(key), "--no-check")
                    assert moved.returncode == 0, moved.stderr
                sequential = time.perf_counter() - started
                clear_target()
                names = make(n)
                assert requests.put(f"{SOURCE}/v1/drain", json={"draining": True}, headers=ops, timeout=10).ok
                started = time.perf_counter()
                drained = requests.post(f"{SOURCE}/v1/drain/moves", headers=ops, timeout=3600)
                seconds = time.perf_counter() - started
                assert requests.put(f"{SOURCE}/v1/drain", json={"draining": False}, headers=ops, timeout=10).ok
                assert drained.status_code == 200, drained.text
                moved = [m for m in drained.json()["moved"] if m["name"] in names]
                assert len(moved) == n, drained.text
                clear_target()
                rows.append({"instances": n, "drain_s": seconds, "sequential_moves_s": sequential,
                             "ratio": seconds / sequential, "longest_cut_off_s": max(m["cut_off_seconds"] for m in moved)})
    finally:
        remove_client_instances(engine)  # what a failed run left here (two_providers clears the target)
    return {"payload_mib": payload_mib, "sizes": rows, "met": all(r["ratio"] <= 1.0 for r in rows)}


def report(result: dict[str, Any]) -> str:
    rows = [[r["instances"], r["drain_s"], r["sequential_moves_s"], f"{r['ratio']:.2f}x", r["longest_cut_off_s"]]
            for r in result["sizes"]]
    return (table(rows, ["instances", "drain s", "sequential `dockpool move`s, s", "ratio", "longest cut-off s"])
            + f"\neach instance holds {result['payload_mib']} MiB of random bytes over its image"
            + f"\ngoal: the drain takes no longer than the sequential moves: {'met' if result['met'] else 'NOT met'}")


def chart(result: dict[str, Any], path: Path) -> None:
    from bench.charts import line_chart

    sizes = [r["instances"] for r in result["sizes"]]
    line_chart(path, "Draining a provider into its fleet", "instances", "seconds",
               {"drain (two at once)": (sizes, [r["drain_s"] for r in result["sizes"]]),
                "sequential dockpool moves": (sizes, [r["sequential_moves_s"] for r in result["sizes"]])})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args()
    result = run(tuple(args.sizes))
    save("drains", result)
    print(report(result))
    print(json.dumps(result["sizes"], indent=1))


if __name__ == "__main__":
    main()

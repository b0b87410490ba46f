"""One disk-watchdog pass with 10, 50 and 100 instances: time per instance, against
the IaaS Docker method (``docker ps -s`` plus ``docker inspect --size`` per container)
over the same instances. Goal: linear, and faster than that method at every size."""
from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import save, table

SIZES = (10, 50, 100)
REPEATS = 3


def iaas_method(ids: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(["docker", "ps", "-a", "-s", "--filter", "label=dockpool.managed-by=dockpool"], check=True,
                   capture_output=True)
    for container in ids:
        subprocess.run(["docker", "inspect", "--size", container], check=True, capture_output=True)
    return time.perf_counter() - started


def dockpool_pass(client: Any, usage_file: str) -> float:
    from dockpool.usage import run_pass

    started = time.perf_counter()
    run_pass(client, usage_file)
    return time.perf_counter() - started


def run(sizes: tuple[int, ...] = SIZES, repeats: int = REPEATS) -> dict[str, Any]:
    from dockpool.engine import connect
    from dockpool.instances import InstanceManager
    from dockpool.policy import Policy, PortRange
    from dockpool_dev.ssh import make_keypair

    client = connect()
    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-"))
    _, public_key = make_keypair(work)
    manager = InstanceManager(client, Policy(port_range=PortRange(45000, 45999), bind_address="127.0.0.1", shared_cores_min=0))
    rows, made = [], []
    try:
        for size in sorted(sizes):
            names = [f"bench-watchdog-{i}" for i in range(len(made), size)]

            def create(name: str) -> str:
                spec = manager.spec({"name": name, "public_key": public_key, "memory": "32m", "cpu_share": 0.05,
                                     "disk_limit": "1g"})
                return manager.create(spec, wait=False)["id"]

            with ThreadPoolExecutor(4) as pool:
                made += list(pool.map(create, names))
            ours = [dockpool_pass(client, str(work / "usage.json")) for _ in range(repeats)]
            theirs = [iaas_method(made) for _ in range(repeats)]
            rows.append({"instances": size, "dockpool_s": statistics.median(ours), "iaas_s": statistics.median(theirs),
                         "dockpool_per_instance_ms": statistics.median(ours) / size * 1000,
                         "iaas_per_instance_ms": statistics.median(theirs) / size * 1000})
    finally:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(manager.remove, made))
    per = [r["dockpool_per_instance_ms"] for r in rows]
    linear = max(per) <= 2 * min(per)  # time per instance stays within a factor of two across sizes
    faster = all(r["dockpool_s"] < r["iaas_s"] for r in rows)
    return {"sizes": rows, "linear": linear, "faster_everywhere": faster, "met": linear and faster}


def report(result: dict[str, Any]) -> str:
    rows = [[r["instances"], r["dockpool_s"], r["iaas_s"], r["dockpool_per_instance_ms"], r["iaas_per_instance_ms"],
             r["iaas_s"] / r["dockpool_s"]] for r in result["sizes"]]
    return (table(rows, ["instances", "dockpool s", "IaaS s", "dockpool ms/inst", "IaaS ms/inst", "speed-up"])
            + f"\nlinear: {'yes' if result['linear'] else 'NO'}, faster at every size: "
            f"{'yes' if result['faster_everywhere'] else 'NO'}")


def chart(result: dict[str, Any], path: Path) -> None:
    from bench.charts import line_chart

    sizes = [r["instances"] for r in result["sizes"]]
    line_chart(path, "One disk watchdog pass", "instances", "milliseconds per instance",
               {"dockpool (one engine call)": (sizes, [r["dockpool_per_instance_ms"] for r in result["sizes"]]),
                "IaaS Docker (ps -s + inspect --size each)": (sizes, [r["iaas_per_instance_ms"] for r in result["sizes"]])},
               log_y=True)


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    result = run()
    save("watchdog_scaling", result)
    print(report(result))


if __name__ == "__main__":
    main()

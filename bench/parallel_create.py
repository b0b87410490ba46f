"""Simultaneous creations through the API (1, 5, 20 at once, shared-CPU instances):
all must succeed with distinct host ports; reports wall time per instance."""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import save, table

LEVELS = (1, 5, 20)


def run(levels: tuple[int, ...] = LEVELS) -> dict[str, Any]:
    import requests

    from dockpool_dev.api_config import TOKENS, make_config
    from dockpool_dev.api_process import api_process
    from dockpool_dev.ssh import make_keypair

    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-"))
    _, public_key = make_keypair(work)
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    most = max(levels)
    settings = make_config(work, threads=most + 4,
                           limits={"instances_per_client": most, "default_memory": "64m", "max_memory": "128m",
                                   "default_cpu_share": 0.05})
    rows = []
    with api_process(work, settings) as url:
        warm = requests.post(f"{url}/v1/instances", json={"public_key": public_key}, headers=headers, timeout=300)
        requests.delete(f"{url}/v1/instances/{warm.json()['id']}", headers=headers, timeout=120)  # a warm service, as in use
        for level in levels:
            barrier = threading.Barrier(level)

            def create(_: int, barrier: threading.Barrier = barrier) -> requests.Response:
                barrier.wait()
                return requests.post(f"{url}/v1/instances", json={"public_key": public_key}, headers=headers, timeout=300)

            started = time.perf_counter()
            with ThreadPoolExecutor(level) as pool:
                replies = list(pool.map(create, range(level)))
            wall = time.perf_counter() - started
            created = [r.json() for r in replies if r.status_code == 201]
            ports = [p["host_port"] for view in created for p in view["ports"]]
            rows.append({"concurrency": level, "succeeded": len(created), "failed": level - len(created),
                         "distinct_ports": len(set(ports)) == len(ports), "wall_s": wall, "wall_per_instance_s": wall / level,
                         "errors": [r.text[:200] for r in replies if r.status_code != 201]})
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda v: requests.delete(f"{url}/v1/instances/{v['id']}", headers=headers, timeout=120),
                              created))
    return {"levels": rows, "met": all(r["failed"] == 0 and r["distinct_ports"] for r in rows)}


def report(result: dict[str, Any]) -> str:
    rows = [[r["concurrency"], f"{r['succeeded']}/{r['concurrency']}", "yes" if r["distinct_ports"] else "NO",
             r["wall_s"], r["wall_per_instance_s"]] for r in result["levels"]]
    return table(rows, ["at once", "created", "distinct ports", "wall s", "wall per instance s"])


def chart(result: dict[str, Any], path: Path) -> None:
    from bench.charts import line_chart

    levels = [r["concurrency"] for r in result["levels"]]
    line_chart(path, "Parallel creation through the API", "instances created at once", "seconds",
               {"wall time per instance": (levels, [r["wall_per_instance_s"] for r in result["levels"]]),
                "wall time in all": (levels, [r["wall_s"] for r in result["levels"]])})


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    result = run()
    save("parallel_create", result)
    print(report(result))


if __name__ == "__main__":
    main()

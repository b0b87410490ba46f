"""Instance creation to SSH banner: the API (real HTTP) against a bare docker SDK
``containers.run`` of the same image, alternating, on the local engine and loopback.
Goal: API p50 <= 1.25 x bare."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import save, summary, table

GOAL = 1.25
IMAGE = "dockpool/debian-sshd:latest"


def bare_run(client: Any, port: int) -> float:
    """What a minimal provider would do: run the image, publish 22, wait for the banner."""
    from dockpool.sshprobe import wait_for_ssh  # pylint: disable=import-outside-toplevel

    started = time.perf_counter()
    container = client.containers.run(IMAGE, detach=True, ports={"22/tcp": ("127.0.0.1", port)})
    wait_for_ssh("127.0.0.1", port, 30)
    elapsed = time.perf_counter() - started
    container.remove(force=True)
    return elapsed


def api_run(session: Any, url: str, headers: dict, public_key: str) -> float:
    started = time.perf_counter()
    reply = session.post(f"{url}/v1/instances", json={"public_key": public_key, "memory": "128m"}, headers=headers, timeout=60)
    elapsed = time.perf_counter() - started  # the API answers once sshd has sent its banner
    reply.raise_for_status()
    session.delete(f"{url}/v1/instances/{reply.json()['id']}", headers=headers, timeout=60).raise_for_status()
    return elapsed


def run(n: int = 20) -> dict[str, Any]:
    import requests  # pylint: disable=import-outside-toplevel

    from dockpool.engine import connect  # pylint: disable=import-outside-toplevel
    from integration.test_api import TOKENS, make_config  # pylint: disable=import-outside-toplevel
    from support.api_process import api_process, free_port  # pylint: disable=import-outside-toplevel
    from support.ssh import make_keypair  # pylint: disable=import-outside-toplevel

    client = connect()
    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-"))
    _, public_key = make_keypair(work)
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    bare, api = [], []
    with api_process(work, make_config(work, limits={"instances_per_client": 2, "default_memory": "128m", "max_memory": "256m"})) as url, \
            requests.Session() as session:
        api_run(session, url, headers, public_key)  # warm both paths once
        bare_run(client, free_port())
        for _ in range(n):  # alternate, so drift on a shared machine hits both alike
            bare.append(bare_run(client, free_port()))
            api.append(api_run(session, url, headers, public_key))
    result = {"goal": f"API p50 <= {GOAL} x bare", "bare": summary(bare), "api": summary(api)}
    result["ratio_p50"] = result["api"]["p50"] / result["bare"]["p50"]
    result["met"] = result["ratio_p50"] <= GOAL
    return result


def report(result: dict[str, Any]) -> str:
    rows = [[name, result[name]["n"], result[name]["p50"], result[name]["p95"]] for name in ("bare", "api")]
    return (table(rows, ["path", "n", "p50 s", "p95 s"])
            + f"\nratio p50 api/bare = {result['ratio_p50']:.2f} (goal <= {GOAL}: {'met' if result['met'] else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    result = run(args.n)
    save("create_latency", result)
    print(report(result))


if __name__ == "__main__":
    main()

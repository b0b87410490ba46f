"""Instance creation to SSH banner, four ways, alternating on the local engine and loopback:
a bare docker SDK ``containers.run`` of the same image (the physical floor), the same run
with the settings dockpool gives instances ("hardened": limits, capabilities, init), the API
(``POST /v1/instances`` over real HTTP) and ``dockpool_container`` in a playbook (the
task's own duration, without ansible-playbook's start-up). Goal: API p50 <= 1.25 x bare."""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import save, summary, table

GOAL = 1.25
IMAGE = "dockpool/debian-sshd:latest"


def bare_run(client: Any, port: int) -> float:
    """What a minimal provider would do: run the image, publish 22, wait for the banner."""
    from dockpool.sshprobe import wait_for_ssh

    started = time.perf_counter()
    container = client.containers.run(IMAGE, detach=True, ports={"22/tcp": ("127.0.0.1", port)})
    wait_for_ssh("127.0.0.1", port, 30)
    elapsed = time.perf_counter() - started
    container.remove(force=True)
    return elapsed


def hardened_kwargs(public_key: str) -> dict[str, Any]:
    """The container settings dockpool gives an instance (limits, capabilities, init, the key
    in the environment), without its labels: the floor for a hardened instance, to tell the
    engine's cost of those settings from the API's own."""
    from dockpool.engine import connect
    from dockpool.images import ports_from_image, resolve_image
    from dockpool.instances import InstanceManager
    from dockpool.policy import Policy, PortRange

    manager = InstanceManager(connect(), Policy(port_range=PortRange(43000, 43999), bind_address="127.0.0.1", shared_cores_min=0))
    spec = manager.spec({"name": "bench-hardened", "public_key": public_key, "memory": 256 * 2**20,
                         "memory_reservation": 128 * 2**20, "cpu_share": 0.5})
    image = resolve_image(manager.client, spec.image)
    placement = manager.plan(spec, ports_from_image(image.attrs), manager.records())
    kwargs = manager._create_kwargs(spec, image, placement, "bench")
    kwargs.pop("labels")
    kwargs.pop("name")
    return kwargs


def hardened_run(client: Any, port: int, kwargs: dict[str, Any]) -> float:
    from dockpool.sshprobe import wait_for_ssh

    started = time.perf_counter()
    container = client.containers.run(**{**kwargs, "ports": {"22/tcp": ("127.0.0.1", port)}})
    wait_for_ssh("127.0.0.1", port, 30)
    elapsed = time.perf_counter() - started
    container.remove(force=True)
    return elapsed


def api_run(session: Any, url: str, headers: dict, public_key: str) -> float:
    started = time.perf_counter()
    reply = session.post(f"{url}/v1/instances", json={"public_key": public_key, "memory_reservation": "128m"}, headers=headers, timeout=60)
    elapsed = time.perf_counter() - started  # the API answers once sshd has sent its banner
    reply.raise_for_status()
    session.delete(f"{url}/v1/instances/{reply.json()['id']}", headers=headers, timeout=60).raise_for_status()
    return elapsed


def playbook_run(work: Path, public_key: str) -> float:
    """Create then remove an instance with dockpool_container; the create task's duration."""
    from dockpool_dev.ansible_run import run_playbook

    provider = {"port_range": "43000-43999", "bind_address": "127.0.0.1"}
    tasks = [
        {"dockpool_container": {"name": "bench-playbook", "public_key": public_key, "memory": "128m", "provider": provider}},
        {"dockpool_container": {"name": "bench-playbook", "state": "absent"}},
    ]
    result = run_playbook(work, tasks)
    if result.rc != 0:
        raise RuntimeError(f"the playbook failed: {result.raw[-2000:]}")
    report = json.loads(result.raw)
    duration = report["plays"][0]["tasks"][0]["task"]["duration"]
    return (datetime.fromisoformat(duration["end"]) - datetime.fromisoformat(duration["start"])).total_seconds()


def run(n: int = 20) -> dict[str, Any]:
    import requests

    from dockpool.engine import connect
    from dockpool_dev.api_config import TOKENS, make_config
    from dockpool_dev.api_process import api_process, free_port
    from dockpool_dev.ssh import make_keypair

    client = connect()
    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-"))
    _, public_key = make_keypair(work)
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    times: dict[str, list[float]] = {"bare": [], "hardened": [], "api": [], "playbook": []}
    hardened = hardened_kwargs(public_key)
    limits = {"instances_per_client": 2, "default_memory": "128m", "max_memory": "256m"}
    with api_process(work, make_config(work, limits=limits)) as url, requests.Session() as session:
        api_run(session, url, headers, public_key)  # warm every path once
        bare_run(client, free_port())
        for _ in range(n):  # alternate, so drift on a shared machine hits all alike
            times["bare"].append(bare_run(client, free_port()))
            times["hardened"].append(hardened_run(client, free_port(), hardened))
            times["api"].append(api_run(session, url, headers, public_key))
            times["playbook"].append(playbook_run(work, public_key))
    result: dict[str, Any] = {"goal": f"API p50 <= {GOAL} x bare", **{k: summary(v) for k, v in times.items()}}
    for path in ("hardened", "api", "playbook"):
        result[f"ratio_{path}_p50"] = result[path]["p50"] / result["bare"]["p50"]
        result[f"ratio_{path}_p95"] = result[path]["p95"] / result["bare"]["p95"]
    result["met"] = result["ratio_api_p50"] <= GOAL
    result["ratio_api_to_hardened_p50"] = result["api"]["p50"] / result["hardened"]["p50"]
    return result


def report(result: dict[str, Any]) -> str:
    rows = [[name, result[name]["n"], result[name]["p50"], result[name]["p95"],
             "1.00" if name == "bare" else f"{result[f'ratio_{name}_p50']:.2f}"] for name in ("bare", "hardened", "api", "playbook")]
    return (table(rows, ["path", "n", "p50 s", "p95 s", "p50 / bare"])
            + f"\nAPI p50 / bare p50 = {result['ratio_api_p50']:.2f} (goal <= {GOAL}: {'met' if result['met'] else 'NOT met'}); "
            + f"API p50 / hardened p50 = {result['ratio_api_to_hardened_p50']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20)
    result = run(parser.parse_args().n)
    save("create_latency", result)
    print(report(result))


if __name__ == "__main__":
    main()

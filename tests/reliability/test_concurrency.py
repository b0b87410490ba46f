"""Many creations at once, mixed with deletions, through the real service: no port
or name collision, no server error, nothing leaked.

A provider may defer a creation under this load with a 503 and Retry-After (its
engine busy past a timeout, or a port lost three times): nothing of it is left,
and, asked again after the wait as a client would, it succeeds. At most a tenth
may be deferred; why each one was is in the figures (and in the assertion)."""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from dockpool.labels import MANAGED_FILTER
from reliability.conftest import CONCURRENT
from support.api_config import TOKENS, make_config
from support.api_process import api_process

pytestmark = pytest.mark.engine


def test_parallel_creations_mixed_with_deletions(tmp_path, engine, keypair, figures):
    before = {c["Id"] for c in engine.api.containers(all=True, filters={"label": MANAGED_FILTER})}
    settings = make_config(tmp_path, threads=16, limits={"instances_per_client": CONCURRENT, "default_memory": "32m",
                                                         "max_memory": "64m", "default_cpu_share": 0.02})
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    statuses: Counter = Counter()
    live: dict[str, dict] = {}  # what exists at each moment, to look for collisions
    collisions: list[str] = []
    failures: list[str] = []  # the bodies of refused creations, to say why in the assertion
    deferred: list[str] = []  # the bodies of 503s, each asked again once
    lock = threading.Lock()
    barrier = threading.Barrier(CONCURRENT)
    started = time.monotonic()
    with api_process(tmp_path, settings) as url:

        def create_then_maybe_delete(i: int) -> None:
            barrier.wait()
            reply = requests.post(f"{url}/v1/instances", json={"public_key": keypair[1]}, headers=headers, timeout=300)
            if reply.status_code == 503:
                with lock:
                    deferred.append(reply.text[:300])
                time.sleep(min(10, int(reply.headers["Retry-After"])))
                reply = requests.post(f"{url}/v1/instances", json={"public_key": keypair[1]}, headers=headers, timeout=300)
            with lock:
                statuses[reply.status_code] += 1
            if reply.status_code != 201:
                with lock:
                    failures.append(f"{reply.status_code}: {reply.text[:300]}")
                return
            view = reply.json()
            with lock:
                ports = {p["host_port"] for p in view["ports"]}
                for other in live.values():
                    if other["name"] == view["name"] or ports & {p["host_port"] for p in other["ports"]}:
                        collisions.append(f"{view['name']} and {other['name']}")
                live[view["id"]] = view
            if i % 2 == 0:  # half are removed at once, while the others are still being created
                gone = requests.delete(f"{url}/v1/instances/{view['id']}", headers=headers, timeout=300)
                with lock:
                    statuses[gone.status_code] += 1
                    live.pop(view["id"], None)

        with ThreadPoolExecutor(CONCURRENT) as pool:
            list(pool.map(create_then_maybe_delete, range(CONCURRENT)))
        remaining = requests.get(f"{url}/v1/instances", headers=headers, timeout=60).json()["instances"]
        assert {v["id"] for v in remaining} == set(live)  # the API's view is the engine's
        with ThreadPoolExecutor(8) as pool:
            for reply in pool.map(lambda i: requests.delete(f"{url}/v1/instances/{i}", headers=headers, timeout=300), live):
                statuses[reply.status_code] += 1
    seconds = time.monotonic() - started
    leaked = {c["Id"] for c in engine.api.containers(all=True, filters={"label": MANAGED_FILTER})} - before
    figures["concurrency"] = {"creations": CONCURRENT, "deletions": statuses[200], "statuses": dict(statuses),
                              "collisions": len(collisions), "leaked": len(leaked), "seconds": round(seconds),
                              "deferred": deferred}
    assert statuses[201] == CONCURRENT, (dict(statuses), failures, deferred)
    assert len(deferred) <= CONCURRENT // 10, deferred
    assert not [s for s in statuses if s >= 500], dict(statuses)
    assert collisions == []
    assert not leaked

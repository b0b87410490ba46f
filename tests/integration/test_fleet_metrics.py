"""What an operator of a fleet graphs, read through the served /metrics after real events:
exchanges between two real providers, a replica refresh, a failed and a drained move, and a
budget refusal on a real API process."""
from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import pytest
import requests

from dockpool.ledger import Ledger, Reading
from dockpool_api.auth import hash_token
from support.api_config import TOKENS, make_config, remove_client_instances
from support.api_process import api_process
from support.two_providers import SOURCE, two_providers

pytestmark = pytest.mark.engine
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def samples(url: str, who: str = "") -> dict[str, float]:
    """The page as {'name{labels}': value} (labels as served, sorted by the client library)."""
    page = requests.get(f"{url}/metrics", headers=auth(who) if who else {}, timeout=10)
    assert page.status_code == 200, page.text
    found = {}
    for line in page.text.splitlines():
        match = SAMPLE.match(line)
        if match:
            found[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return found


@pytest.fixture
def cleanup(engine):
    yield
    remove_client_instances(engine)


@contextmanager
def watching(url: str, names: tuple[str, ...], seconds: float = 600) -> Iterator[dict[str, float]]:
    """The highest value each of ``names`` reached while the block ran (scraped every 0.1 s from
    a thread, which stops with the block or after ``seconds``)."""
    most = {name: 0.0 for name in names}
    done = threading.Event()

    def scrape() -> None:
        deadline = time.monotonic() + seconds
        while not done.is_set() and time.monotonic() < deadline:
            page = samples(url)
            for name in names:
                most[name] = max(most[name], page[name])
            done.wait(0.1)

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    try:
        yield most
    finally:
        done.set()
        thread.join(timeout=30)


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds  # bounded: a few gossip rounds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_exchanges_replicas_moves_and_a_drain_are_graphed(tmp_path, keypair, engine, cleanup):
    with two_providers(tmp_path) as (source, target, engine2):
        def rounds_graphed():
            # The members find each other within the target's first exchange now, so the source's
            # first exchange with it may come a round after the fixture returns: wait for both.
            page = samples(SOURCE)
            return page if page["dockpool_fleet_exchange_round_bytes_count"] >= 2 \
                and page['dockpool_fleet_exchanges_total{result="answered"}'] >= 1 else None

        seen = wait_for(rounds_graphed, 30, "no exchange round, or no answered exchange, was graphed")
        assert seen['dockpool_fleet_members{state="answering",tier="member"}'] == 1
        assert seen["dockpool_fleet_exchange_rounds_total"] >= 2
        assert seen["dockpool_fleet_exchange_round_bytes_sum"] > 0
        assert seen['dockpool_fleet_exchanges_total{result="answered"}'] >= 1

        made = requests.post(f"{SOURCE}/v1/instances", headers=auth("alice"), timeout=180,
                             json={"public_key": keypair[1], "memory_reservation": "64m"})
        assert made.status_code == 201, made.text
        name = made.json()["name"]
        replicated = requests.post(f"{SOURCE}/v1/instances/{name}/replicate", headers=auth("alice"), timeout=600)
        assert replicated.status_code == 200, replicated.text
        shipped = replicated.json()["shipped_bytes"]
        private = samples(SOURCE, "ops")
        series = f'{{holder="target",instance="{name}"}}'
        assert private[f"dockpool_fleet_replica_last_shipped_bytes{series}"] == shipped > 0
        assert 0 <= private[f"dockpool_fleet_replica_age_seconds{series}"] < 600
        assert private["dockpool_fleet_replica_shipped_bytes_total"] == shipped
        assert private['dockpool_fleet_replica_refreshes_total{result="done"}'] == 1
        assert not any(name in key for key in samples(SOURCE))  # an instance's name names its owner

        # A move the target never granted (well-formed, unknown there) fails at the target; the instance runs here again.
        refused = requests.post(f"{SOURCE}/v1/instances/{name}/move", headers=auth("alice"), timeout=120,
                                json={"target": "target", "move": "0123456789abcdef", "grant": "A" * 43})
        assert refused.status_code >= 400, refused.text
        failed = samples(SOURCE)
        assert failed['dockpool_fleet_moves_total{result="failed"}'] == 1, refused.text
        assert failed["dockpool_fleet_move_seconds_count"] == 1 and failed["dockpool_fleet_moves_in_flight"] == 0

        assert requests.put(f"{SOURCE}/v1/drain", json={"draining": True}, headers=auth("ops"), timeout=30).ok
        with watching(SOURCE, ("dockpool_fleet_moves_in_flight", "dockpool_fleet_drains_in_flight")) as most:
            drained = requests.post(f"{SOURCE}/v1/drain/moves", headers=auth("ops"), timeout=600)
        assert most == {"dockpool_fleet_moves_in_flight": 1, "dockpool_fleet_drains_in_flight": 1}
        assert drained.status_code == 200 and [m["name"] for m in drained.json()["moved"]] == [name], drained.text
        after = samples(SOURCE)
        assert after['dockpool_fleet_moves_total{result="done"}'] == 1
        assert after["dockpool_fleet_move_seconds_count"] == 2 and after["dockpool_fleet_move_seconds_sum"] > 0
        assert after['dockpool_fleet_drains_total{result="complete"}'] == 1
        assert after["dockpool_fleet_drain_seconds_count"] == 1
        assert after["dockpool_fleet_drains_in_flight"] == 0 and after["dockpool_fleet_moves_in_flight"] == 0
        assert after["dockpool_fleet_drain_stayed_instances_total"] == 0
        # The target hears the drain with the source's next exchanges.
        wait_for(lambda: samples(target.url)['dockpool_fleet_members{state="draining",tier="member"}'] == 1, 30,
                 "the target never graphed its member as draining")


def test_a_budget_refusal_is_counted_by_budget(tmp_path, keypair):
    clients = [{"name": n, "token_sha256": hash_token(t), "admin": n == "ops", "package": "tiny" if n == "alice" else ""}
               for n, t in TOKENS.items()]
    settings = make_config(tmp_path, clients=clients, packages={"tiny": {"budgets": {"cpu_hours": 0.001}}})
    ledger = Ledger(settings["ledger_file"])
    for cpu_seconds in (0, 60):  # two passes a minute of CPU apart: 0.017 CPU hours, over the budget
        ledger.record([Reading("id-1", "alice", "alice-p-1", "g1", 2**30, cpu_ns=cpu_seconds * 10**9)])
    with api_process(tmp_path, settings) as url:
        assert samples(url)['dockpool_budget_refusals_total{budget="cpu_hours"}'] == 0
        refused = requests.post(f"{url}/v1/instances", headers=auth("alice"), timeout=60,
                                json={"public_key": keypair[1]})
        assert refused.status_code == 402 and refused.json()["field"] == "budget", refused.text
        assert samples(url)['dockpool_budget_refusals_total{budget="cpu_hours"}'] == 1

"""Metering (issue 25, part 1) against work of known size, on a real instance: the watchdog's
pass writes what the kernel counted into the ledger, within 5% of a CPU burn of two cores for
30 s (as the shell that ran it counts its children's CPU time) and of 200 MiB down and up
through the instance's published SSH port."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest
import requests

from dockpool.cgroups import pids_of
from dockpool.instances import InstanceManager
from dockpool.ledger import Ledger
from dockpool.metering import meter
from dockpool.policy import Policy, PortRange
from dockpool.usage import run_pass
from support import second_engine
from support.api_config import TOKENS, make_config
from support.api_process import api_process
from support.cgroups import cpu_ns
from support.cli import cli
from support.fake_nvml import FakeNVML, gpu
from support.ssh import BASE_OPTIONS, ssh_run

MIB = 1024**2
pytestmark = pytest.mark.engine


def rows(ledger: Ledger, instance_id: str) -> list[dict]:
    """The instance's rows, one per pass, oldest first."""
    cursor = ledger.db.execute("SELECT cpu_ns, rx_bytes, tx_bytes, memory_byte_seconds FROM usage "
                               "WHERE instance_id = ? ORDER BY start", (instance_id,))
    return [dict(zip(("cpu_ns", "rx_bytes", "tx_bytes", "memory_byte_seconds"), r)) for r in cursor]


def transfer_both_ways(key: Path, port: int, mib: int, metering_pass: Callable[[], int]) -> None:
    """``mib`` MiB down from the instance over SSH, a metering pass, as much up, another pass."""
    ssh = ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", *BASE_OPTIONS, "-p", str(port), "root@127.0.0.1"]
    down = subprocess.run([*ssh, f"head -c {mib}M /dev/zero"], stdout=subprocess.PIPE, timeout=120, check=True)
    assert len(down.stdout) == mib * MIB
    metering_pass()
    with subprocess.Popen(["head", "-c", f"{mib}M", "/dev/zero"], stdout=subprocess.PIPE) as source:
        subprocess.run([*ssh, "cat > /dev/null"], stdin=source.stdout, timeout=120, check=True)
    metering_pass()


def children_cpu_seconds(times_output: str) -> float:
    """bash's ``times``: its second line is its children's user and system time, as 1m2.345s."""
    total = 0.0
    for value in times_output.strip().splitlines()[-1].split():
        minutes, seconds = value.rstrip("s").split("m")
        total += int(minutes) * 60 + float(seconds)
    return total


def test_a_pass_meters_cpu_and_network_within_five_percent_of_known_work(engine, policy, names, keypair, tmp_path):
    manager = InstanceManager(engine, policy)
    key, public = keypair
    view = manager.create(manager.spec({"name": names("meter"), "public_key": public, "memory": "256m", "cpu_share": 2}))
    port = view["ssh"]["port"]
    ledger = Ledger(str(tmp_path / "usage.db"))

    def metering_pass() -> int:
        report = run_pass(engine, str(tmp_path / "usage.json"))
        return meter(ledger, list(report["instances"].values()))

    metering_pass()  # the first reading
    burn = ssh_run(key, port, "for n in 1 2; do timeout 30 bash -c 'while :; do :; done' & done; wait; times",
                   timeout=120)
    assert burn.returncode == 0, burn.stderr
    known_cpu = children_cpu_seconds(burn.stdout)
    assert known_cpu > 20, f"the burn got {known_cpu} s of CPU: the machine is too busy for a known size"
    metering_pass()

    transfer_both_ways(key, port, 200, metering_pass)

    burned, downloaded, uploaded = rows(ledger, view["id"])
    assert burned["cpu_ns"] / 1e9 == pytest.approx(known_cpu, rel=0.05)
    assert burned["memory_byte_seconds"] > 0
    # What crossed the instance's interface: the payload, SSH's framing and TCP/IP's headers.
    assert 1.0 <= downloaded["tx_bytes"] / (200 * MIB) <= 1.05, downloaded
    assert 1.0 <= uploaded["rx_bytes"] / (200 * MIB) <= 1.05, uploaded
    assert downloaded["rx_bytes"] < 20 * MIB and uploaded["tx_bytes"] < 20 * MIB  # the other way: acknowledgements

    engine.api.restart(view["id"], timeout=2)  # a new cgroup: its counters start again at zero
    assert metering_pass() == 1
    after_restart = rows(ledger, view["id"])[-1]["cpu_ns"]
    # The new cgroup's own count (sshd starting again): neither the old counter again nor a negative difference.
    assert 0 < after_restart < known_cpu * 1e9 / 2, after_restart
    manager.remove(view["id"])  # the ledger keeps what it used; its last reading goes
    metering_pass()
    assert view["id"] not in ledger.known()
    [kept] = [r for r in ledger.usage() if r["instance_id"] == view["id"]]
    assert kept["cpu_seconds"] >= known_cpu * 0.95 and kept["tx_bytes"] >= 200 * MIB


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_network_bytes_are_metered_in_the_instances_own_namespace_under_each_runtime(runtime, engine, policy, names,
                                                                                    keypair, tmp_path):
    """Under gVisor the cgroup's first process is runsc's gofer, in an empty network namespace of
    its own: the instance's traffic crosses the namespace the engine made for it, where runsc's
    sandbox runs (runc's init under runc). 40 MiB down and 40 MiB up through its published SSH port."""
    if runtime not in (engine.api.info().get("Runtimes") or {}):
        pytest.skip(f"{runtime} is not registered with this engine (scripts/setup.sh registers runsc)")
    manager = InstanceManager(engine, replace(policy, runtime=runtime))
    key, public = keypair
    view = manager.create(manager.spec({"name": names(runtime), "public_key": public, "memory": "256m"}))
    assert view["runtime"] == runtime
    ledger = Ledger(str(tmp_path / "usage.db"))

    def metering_pass() -> int:
        return meter(ledger, list(run_pass(engine, str(tmp_path / "usage.json"))["instances"].values()))

    metering_pass()  # the first reading
    transfer_both_ways(key, view["ssh"]["port"], 40, metering_pass)
    downloaded, uploaded = rows(ledger, view["id"])
    assert 1.0 <= downloaded["tx_bytes"] / (40 * MIB) <= 1.05, downloaded
    assert 1.0 <= uploaded["rx_bytes"] / (40 * MIB) <= 1.05, uploaded
    assert downloaded["rx_bytes"] < 8 * MIB and uploaded["tx_bytes"] < 8 * MIB  # the other way: acknowledgements
    manager.remove(view["id"])


def test_an_engine_restart_with_live_restore_neither_loses_nor_doubles_counted_use(names, keypair, tmp_path):
    """On the second engine (live-restore on, as the docker_engine role sets it), restarted as
    `systemctl restart docker` does between two CPU burns: the instance and its cgroup run on,
    and the ledger counts what the kernel counted (read here from its cgroup file), once."""
    engine2 = second_engine.ensure()
    if not engine2.info()["LiveRestoreEnabled"]:  # started by an older checkout without it
        engine2 = second_engine.restart()
    manager = InstanceManager(engine2, Policy(port_range=PortRange(46200, 46209), bind_address="127.0.0.1",
                                              shared_cores_min=0))
    view = manager.create(manager.spec({"name": names("restart"), "public_key": keypair[1], "memory": "128m"}))
    ledger = Ledger(str(tmp_path / "usage.db"))

    def metering_pass() -> int:
        return meter(ledger, list(run_pass(engine2, str(tmp_path / "usage.json"))["instances"].values()))

    def burn() -> None:
        assert engine2.containers.get(view["id"]).exec_run(["timeout", "3", "sh", "-c", "while :; do :; done"]).exit_code == 124

    try:
        before = cpu_ns(view["id"])
        metering_pass()
        burn()
        metering_pass()
        started = engine2.api.inspect_container(view["id"])["State"]["StartedAt"]
        engine2 = second_engine.restart()
        assert engine2.api.inspect_container(view["id"])["State"]["StartedAt"] == started  # it ran on
        burn()
        assert metering_pass() == 1
        after = cpu_ns(view["id"])
        counted = sum(r["cpu_ns"] for r in rows(ledger, view["id"]))
        assert counted > 5e9, counted  # both burns
        assert counted == pytest.approx(after - before, rel=0.05), (counted, before, after)
    finally:
        InstanceManager(engine2, manager.policy).remove(view["id"])


def test_gpu_time_goes_to_the_instance_whose_processes_kept_a_gpu_busy(engine, policy, names, keypair, tmp_path):
    """Real instances, cgroups and ledger; only NVML is faked (its one seam), reporting the real
    host PIDs of one instance's processes busy on two GPUs, and a host process busy too."""
    manager = InstanceManager(engine, policy)
    busy, idle = (manager.create(manager.spec({"name": names(n), "public_key": keypair[1], "memory": "128m"}))
                  for n in ("gpu", "nogpu"))
    busy_pids = [int(pid) for pid in pids_of(busy["id"]) or []]
    assert busy_pids, "the instance has no process in its cgroup"
    nvml = FakeNVML([gpu(0), gpu(1)])
    ledger = Ledger(str(tmp_path / "usage.db"))

    def metering_pass() -> int:
        now = time.time()  # NVML's samples of the last moments, as the driver keeps them
        nvml.gpus[0]["samples"] = [(busy_pids[0], now - 1, 100), (os.getpid(), now - 1, 100)]
        nvml.gpus[1]["samples"] = [(busy_pids[-1], now - 2, 50)]
        return meter(ledger, list(run_pass(engine, str(tmp_path / "usage.json"))["instances"].values()), nvml)

    metering_pass()
    time.sleep(2)
    assert metering_pass() >= 2
    got = {r["instance_id"]: r for r in ledger.usage()}
    assert got[busy["id"]]["gpu_seconds"] == pytest.approx(1.5 * got[busy["id"]]["seconds"])
    assert got[busy["id"]]["seconds"] >= 2
    assert got[idle["id"]]["gpu_seconds"] == 0  # the host's own process counts for no instance
    for view in (busy, idle):
        manager.remove(view["id"])


def test_each_client_reads_their_own_usage_and_an_administrator_everyones(tmp_path, keypair, other_keypair, engine,
                                                                          cleanup):
    """GET /v1/usage on a real API process over a ledger the watchdog's pass wrote, and `dockpool usage`."""
    settings = make_config(tmp_path)
    auth = {who: {"Authorization": f"Bearer {TOKENS[who]}"} for who in TOKENS}
    with api_process(tmp_path, settings) as url:
        made = {}
        for who, key in (("alice", keypair), ("bob", other_keypair)):
            answer = requests.post(f"{url}/v1/instances", headers=auth[who], timeout=180,
                                   json={"public_key": key[1], "memory_reservation": "64m"})
            assert answer.status_code == 201, answer.text
            made[who] = answer.json()
        assert requests.get(f"{url}/v1/usage", headers=auth["alice"], timeout=10).json()["instances"] == []  # no ledger yet
        ledger = Ledger(settings["ledger_file"])
        meter(ledger, list(run_pass(engine, settings["usage_file"])["instances"].values()))
        burn = engine.containers.get(made["alice"]["id"]).exec_run(["timeout", "3", "sh", "-c", "while :; do :; done"])
        assert burn.exit_code == 124
        meter(ledger, list(run_pass(engine, settings["usage_file"])["instances"].values()))

        def usage(who: str, **query: str) -> requests.Response:
            return requests.get(f"{url}/v1/usage", headers=auth[who], params=query, timeout=10)

        [mine] = usage("alice").json()["instances"]
        assert mine["name"] == made["alice"]["name"] and mine["owner"] == "alice" and mine["cpu_seconds"] > 2
        assert usage("alice").json()["total"]["cpu_seconds"] == mine["cpu_seconds"]
        assert [r["owner"] for r in usage("bob").json()["instances"]] == ["bob"]
        assert sorted(r["owner"] for r in usage("ops").json()["instances"]) == ["alice", "bob"]
        assert [r["owner"] for r in usage("ops", client="bob").json()["instances"]] == ["bob"]
        assert usage("alice", until="946684800").json()["instances"] == []  # ends before the month began
        assert usage("alice", since="946684800").json()["instances"][0]["cpu_seconds"] == mine["cpu_seconds"]
        for who, query, status, field in (("bob", {"client": "alice"}, 403, "client"), ("alice", {"since": "2026-12-01"}, 400, "since"),
                                          ("alice", {"format": "xml"}, 400, "format")):
            refused = usage(who, **query)
            assert refused.status_code == status and refused.json()["field"] == field, refused.text
        exported = usage("alice", format="csv")
        assert exported.headers["Content-Type"].startswith("text/csv")
        header, line = exported.text.splitlines()
        assert header.startswith("provider,since,until,owner,name") and made["alice"]["name"] in line

        metrics = requests.get(f"{url}/metrics", headers=auth["ops"], timeout=10).text
        [cpu] = [line for line in metrics.splitlines() if line.startswith('dockpool_usage_cpu_seconds_total{client="alice"}')]
        assert float(cpu.split()[-1]) == pytest.approx(mine["cpu_seconds"])
        assert {line.split('client="')[1].split('"')[0] for line in metrics.splitlines()
                if line.startswith("dockpool_usage_") and 'client="' in line} == set(TOKENS)  # configured names only

        page = requests.get(f"{url}/", headers=auth["alice"], timeout=10).text
        section = page.split('id="usage"')[1].split("</section>")[0]
        assert made["alice"]["name"] in section and made["bob"]["name"] not in section and 'class="bar"' in section

        home = tmp_path / "client"
        assert cli(home, "login", url, "--token", TOKENS["alice"]).returncode == 0
        shown = cli(home, "usage", "--json", "--since", "2000-01-01T00:00:00Z")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["total"]["cpu_seconds"] == pytest.approx(mine["cpu_seconds"])
        table = cli(home, "usage")
        assert made["alice"]["name"] in table.stdout and "total" in table.stdout and made["bob"]["name"] not in table.stdout


def test_the_service_refuses_to_start_on_a_damaged_ledger_naming_its_backup(tmp_path):
    settings = make_config(tmp_path)
    ledger = Ledger(settings["ledger_file"])
    ledger.backup()
    ledger.close()  # its log checkpointed into the file, then the file damaged
    damaged = b"SQLite format 3\0" + b"\xff" * 8192
    with open(settings["ledger_file"], "wb") as handle:
        handle.write(damaged)
    (tmp_path / "api.json").write_text(json.dumps(settings))
    started = subprocess.run([sys.executable, "-m", "dockpool_api", "--config", str(tmp_path / "api.json")],
                             capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert f"{settings['ledger_file']}.backup" in started.stderr and "left as it is" in started.stderr, started.stderr
    with open(settings["ledger_file"], "rb") as handle:
        assert handle.read() == damaged  # never reset

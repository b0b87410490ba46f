"""gVisor (runsc) against runc, alternating on this machine's engine: creation to the first
SSH login, a system-call-heavy job inside (unpack Python's standard library from a tarball
and byte-compile it), and a network transfer out of the instance through its published port.
Goal: runsc's creation-to-login p50 <= 1.5 x runc's; the other two are the cost, reported."""
from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import summary, table

GOAL = 1.5
IMAGE = "dockpool/debian-sshd:latest"
RUNTIMES = ("runc", "runsc")
# Unpack the image's Python standard library (about 600 files, 540 modules) and byte-compile it: open, stat, read, write,
# mkdir and mmap by the ten thousand, the kind of work a build does.
JOB = ("rm -rf /tmp/job && mkdir /tmp/job && tar -C /tmp/job -xf /tmp/stdlib.tar "
       "&& python3 -m compileall -q -j 1 /tmp/job >/dev/null && find /tmp/job -name '*.pyc' | wc -l")
PREPARE = "tar -C /usr/lib -cf /tmp/stdlib.tar python3.11"
# A sender inside the instance: MIB megabytes from memory to the first connection on PORT.
SENDER = ("nohup python3 -c \"import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
          "s.bind(('0.0.0.0', {port})); s.listen(1); c, _ = s.accept(); b = bytes(1 << 20); "
          "[c.sendall(b) for _ in range({mib})]; c.close()\" >/dev/null 2>&1 &")


def ssh(key: Path, port: int, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    from dockpool_dev.ssh import ssh_run

    return ssh_run(key, port, command, timeout=timeout)


def first_login(key: Path, port: int, deadline: float) -> None:
    while ssh(key, port, "true", timeout=10).returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no SSH login on port {port}")
        time.sleep(0.05)


def start_true(client: Any, runtime: str) -> float:
    """The runtime's own floor: run `true` in the image and wait for it to exit."""
    started = time.perf_counter()
    client.containers.run(IMAGE, ["true"], entrypoint=[], runtime=runtime, remove=True)
    return time.perf_counter() - started


def create_to_login(manager: Any, name: str, key: Path, public_key: str, **params: Any) -> tuple[float, dict]:
    """From the creation call to a completed `ssh ... true`: what a client waits for."""
    started = time.perf_counter()
    view = manager.create(manager.spec({"name": name, "public_key": public_key, "memory": "512m", **params}))
    first_login(key, view["ssh"]["port"], time.monotonic() + 60)
    return time.perf_counter() - started, view


def job(key: Path, port: int) -> float:
    started = time.perf_counter()
    done = ssh(key, port, JOB)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or int(done.stdout.strip() or 0) < 300:
        raise RuntimeError(f"the job failed: {done.stdout} {done.stderr}")
    return elapsed


def transfer(key: Path, view: dict, mib: int) -> float:
    """MiB per second received from the instance's sender through its published extra port."""
    port = next(p["host_port"] for p in view["ports"] if p["name"] == "extra-1")
    if ssh(key, view["ssh"]["port"], SENDER.format(port=port, mib=mib)).returncode != 0:
        raise RuntimeError("the sender did not start")
    received, started = 0, 0.0
    deadline = time.monotonic() + 30
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            started = time.perf_counter()
            chunk = sock.recv(1 << 20)
            if chunk:
                break
            sock.close()  # the proxy accepted before the sender listened
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the sender never answered")
        time.sleep(0.1)
    with sock:
        received = len(chunk)
        while chunk:
            chunk = sock.recv(1 << 20)
            received += len(chunk)
    elapsed = time.perf_counter() - started
    if received != mib << 20:
        raise RuntimeError(f"received {received} bytes of {mib << 20}")
    return mib / elapsed


def run(n: int = 10, jobs: int = 3, mib: int = 256) -> dict[str, Any]:
    from dockpool.engine import connect
    from dockpool.instances import InstanceManager
    from dockpool.policy import Policy, PortRange
    from dockpool_dev.ssh import make_keypair

    client = connect()
    if "runsc" not in (client.api.info().get("Runtimes") or {}):
        raise RuntimeError("runsc is not registered with this engine: run scripts/setup.sh")
    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-"))
    key, public_key = make_keypair(work)
    policy = Policy(port_range=PortRange(43000, 43999), bind_address="127.0.0.1", shared_cores_min=0)
    managers = {runtime: InstanceManager(client, replace(policy, runtime=runtime)) for runtime in RUNTIMES}
    login: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    floor: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    work_s: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    rate: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    for i in range(n + 1):  # alternate, so drift on a shared machine hits both alike; the first round warms up
        for runtime, manager in managers.items():
            elapsed, view = create_to_login(manager, f"bench-{runtime}-{i}", key, public_key)
            manager.remove(view["id"])
            bare = start_true(client, runtime)
            if i:
                login[runtime].append(elapsed)
                floor[runtime].append(bare)
    long_lived = {}
    try:
        for runtime, manager in managers.items():
            _, long_lived[runtime] = create_to_login(manager, f"bench-{runtime}-work", key, public_key, extra_ports=1)
            if ssh(key, long_lived[runtime]["ssh"]["port"], PREPARE).returncode != 0:
                raise RuntimeError("could not pack the standard library")
        for _ in range(jobs):
            for runtime, view in long_lived.items():
                work_s[runtime].append(job(key, view["ssh"]["port"]))
                rate[runtime].append(transfer(key, view, mib))
    finally:
        for runtime, view in long_lived.items():
            managers[runtime].remove(view["id"])
    result: dict[str, Any] = {
        "goal": f"runsc create-to-login p50 <= {GOAL} x runc",
        "transfer_mib": mib,
        **{f"login_{r}": summary(login[r]) for r in RUNTIMES},
        **{f"floor_{r}": summary(floor[r]) for r in RUNTIMES},
        **{f"job_{r}": summary(work_s[r]) for r in RUNTIMES},
        **{f"transfer_{r}": summary(rate[r]) for r in RUNTIMES},
    }
    result["ratio_login_p50"] = result["login_runsc"]["p50"] / result["login_runc"]["p50"]
    result["ratio_floor_p50"] = result["floor_runsc"]["p50"] / result["floor_runc"]["p50"]
    result["ratio_job_p50"] = result["job_runsc"]["p50"] / result["job_runc"]["p50"]
    result["ratio_transfer_p50"] = result["transfer_runsc"]["p50"] / result["transfer_runc"]["p50"]
    result["met"] = result["ratio_login_p50"] <= GOAL
    return result


def report(result: dict[str, Any]) -> str:
    rows = [
        ["`docker run IMAGE true`, the runtime's floor (s)", result["floor_runc"]["p50"], result["floor_runsc"]["p50"],
         f"{result['ratio_floor_p50']:.2f}"],
        ["create -> first SSH login (s)", result["login_runc"]["p50"], result["login_runsc"]["p50"],
         f"{result['ratio_login_p50']:.2f}"],
        ["unpack + byte-compile the stdlib (s)", result["job_runc"]["p50"], result["job_runsc"]["p50"],
         f"{result['ratio_job_p50']:.2f}"],
        [f"transfer out, {result['transfer_mib']} MiB (MiB/s)", result["transfer_runc"]["p50"],
         result["transfer_runsc"]["p50"], f"{result['ratio_transfer_p50']:.2f}"],
    ]
    return (table(rows, ["p50 of", "runc", "runsc (gVisor)", "runsc / runc"])
            + f"\ncreate -> login: runsc / runc = {result['ratio_login_p50']:.2f} "
            + f"(goal <= {GOAL}: {'met' if result['met'] else 'NOT met'})")

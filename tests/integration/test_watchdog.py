"""The disk watchdog pass and its command against the real engine."""
from __future__ import annotations

import subprocess
import sys

from dockpool.atomicfile import read_json
from dockpool.instances import InstanceManager
from dockpool.ledger import Ledger
from dockpool.usage import run_pass
from support.ssh import ssh_run


def test_watchdog_stops_only_the_instance_over_its_limit(engine, policy, names, keypair, tmp_path, caplog):
    manager = InstanceManager(engine, policy)
    key, public = keypair
    greedy = manager.create(manager.spec({"name": names("greedy"), "public_key": public, "memory": "128m", "disk_limit": "20m"}))
    modest = manager.create(manager.spec({"name": names("modest"), "public_key": public, "memory": "128m", "disk_limit": "200m"}))
    unlimited = manager.create(manager.spec({"name": names("free"), "public_key": public, "memory": "128m"}))
    for view, size in ((greedy, 40), (modest, 5), (unlimited, 40)):
        wrote = ssh_run(key, view["ssh"]["port"], f"head -c {size}M /dev/urandom > /root/blob && sync")
        assert wrote.returncode == 0, wrote.stderr
    foreign = engine.containers.run("local/debian:bookworm", ["sleep", "300"], name=names("foreign"), detach=True)

    usage_file = tmp_path / "usage.json"
    report = run_pass(engine, str(usage_file), stop_timeout=2)

    state = {v["name"]: engine.api.inspect_container(v["id"])["State"]["Status"] for v in (greedy, modest, unlimited)}
    assert state == {greedy["name"]: "exited", modest["name"]: "running", unlimited["name"]: "running"}
    assert engine.api.inspect_container(foreign.id)["State"]["Status"] == "running"  # not ours: untouched
    assert engine.api.inspect_container(greedy["id"])  # stopped, never removed
    written = read_json(str(usage_file))
    assert written == report
    entry = written["instances"][greedy["name"]]
    assert entry["action"] == "stopped" and entry["size_rw"] > 40 * 1024**2 > entry["disk_limit"]
    assert written["instances"][modest["name"]]["size_rw"] >= 5 * 1024**2
    assert foreign.name not in written["instances"]
    assert f"stopped {greedy['name']}" in caplog.text

    again = run_pass(engine, str(usage_file))  # the stopped instance stays stopped and is still reported
    assert "action" not in again["instances"][greedy["name"]]


def test_watchdog_command_runs_and_skips_when_a_pass_is_running(engine, tmp_path):
    env = {"PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "dockpool.watchdog", "--usage-file", str(tmp_path / "u.json"), "--lock-file", str(tmp_path / "lock"),
            "--ledger-file", str(tmp_path / "usage.db")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "measured" in done.stderr
    assert read_json(str(tmp_path / "u.json"))["updated"]
    assert Ledger(str(tmp_path / "usage.db"), reader=True).usage() == []  # made; a first pass has nothing to count yet
    (tmp_path / "usage.db").write_bytes(b"not a ledger" * 1000)
    refused = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and f"{tmp_path / 'usage.db'}.backup" in refused.stderr, refused.stderr
    (tmp_path / "usage.db").unlink()
    holder = subprocess.Popen(["flock", str(tmp_path / "lock"), "sleep", "20"])
    try:
        subprocess.run(["sleep", "0.5"], check=True)
        skipped = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert skipped.returncode == 0 and "still running" in skipped.stderr
    finally:
        holder.kill()
        holder.wait()



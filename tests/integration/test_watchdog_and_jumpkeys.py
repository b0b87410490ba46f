"""The disk watchdog pass and the jump-key lookup against the real engine."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import TEST_PORTS

from dockpool.atomicfile import read_json
from dockpool.instances import InstanceManager
from dockpool.policy import Policy
from dockpool.usage import run_pass
from support.ssh import ssh_run

pytestmark = pytest.mark.engine


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
    argv = [sys.executable, "-m", "dockpool.watchdog", "--usage-file", str(tmp_path / "u.json"), "--lock-file", str(tmp_path / "lock")]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "measured" in done.stderr
    assert read_json(str(tmp_path / "u.json"))["updated"]
    holder = subprocess.Popen(["flock", str(tmp_path / "lock"), "sleep", "20"])
    try:
        subprocess.run(["sleep", "0.5"], check=True)
        skipped = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert skipped.returncode == 0 and "still running" in skipped.stderr
    finally:
        holder.kill()
        holder.wait()


def test_jump_keys_follow_the_instances(engine, policy, names, keypair, tmp_path):
    manager = InstanceManager(engine, policy)
    view = manager.create(manager.spec({"name": names(), "public_key": keypair[1], "memory": "64m"}), wait=False)
    policy_file = tmp_path / "provider.json"
    policy_file.write_text('{"bind_address": "127.0.0.1"}')
    env = {"PATH": "/usr/bin:/bin"}
    argv = [sys.executable, "-m", "dockpool.jumpkeys", "--policy-file", str(policy_file)]
    lines = subprocess.run(argv + ["iaas-client"], env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    mine = [line for line in lines if line.endswith(f"dockpool:{view['name']}") or f"{view['name']}," in line or f",{view['name']}" in line]
    assert len(mine) == 1 and f'permitopen="127.0.0.1:{view["ssh"]["port"]}"' in mine[0]
    assert subprocess.run(argv + ["root"], env=env, capture_output=True, text=True, check=True).stdout == ""
    manager.remove(view["id"])
    after = subprocess.run(argv + ["iaas-client"], env=env, capture_output=True, text=True, check=True).stdout
    assert f'127.0.0.1:{view["ssh"]["port"]}"' not in after


def test_the_core_rewrites_the_key_list_sshd_reads_on_create_and_remove(engine, names, keypair, tmp_path):
    keys = tmp_path / "jump-keys"
    policy = Policy(port_range=TEST_PORTS, bind_address="127.0.0.1", shared_cores_min=0, jump_keys_file=str(keys))
    manager = InstanceManager(engine, policy)
    view = manager.create(manager.spec({"name": names(), "public_key": keypair[1], "memory": "64m"}), wait=False)
    written = keys.read_text()
    assert f'permitopen="127.0.0.1:{view["ssh"]["port"]}"' in written and " ".join(keypair[1].split()[:2]) in written
    manager.remove(view["id"])
    assert f'127.0.0.1:{view["ssh"]["port"]}"' not in keys.read_text()  # revoked at once

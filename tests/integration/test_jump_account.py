"""The jump account's key list against the real engine: it follows the instances."""
from __future__ import annotations

import subprocess
import sys

from conftest import TEST_PORTS

from dockpool.instances import InstanceManager
from dockpool.policy import Policy


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

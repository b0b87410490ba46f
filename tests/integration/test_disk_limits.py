"""Disk limits against the ways around them an attacker tried, on the real engine:
a file deleted while still open, and starting again an instance that is over its limit.
(Hard limits by filesystem quota need overlay2 on xfs with project quotas, which the
kernel of this machine cannot mount; see docs/decisions.md.)"""
from __future__ import annotations

import time

import pytest
from webtest import TestApp

from dockpool.errors import Conflict
from dockpool.instances import InstanceManager
from dockpool.usage import run_pass
from dockpool_api.app import make_app
from dockpool_api.config import config_from_dict
from support.api_config import TOKENS, make_config
from support.ssh import ssh_run

pytestmark = pytest.mark.engine
MIB = 1024**2
# A shell that writes 150 MiB into a file, deletes it, and keeps it open (fd 3) for a while.
HIDE = "nohup sh -c 'exec 3>/root/hidden; head -c 150M /dev/urandom >&3; rm /root/hidden; sleep 600' >/dev/null 2>&1 &"


def limited(manager: InstanceManager, names, public: str, disk_limit: str, *who: str) -> list[dict]:
    """Instances of 128m with ``disk_limit``, one per name in ``who``."""
    return [manager.create(manager.spec({"name": names(n), "public_key": public, "memory": "128m",
                                         "disk_limit": disk_limit})) for n in who]


def test_space_held_by_a_deleted_open_file_counts_against_the_limit(engine, policy, names, keypair, tmp_path):
    manager = InstanceManager(engine, policy)
    key, public = keypair
    hider, honest = limited(manager, names, public, "100m", "hider", "honest")
    assert ssh_run(key, hider["ssh"]["port"], HIDE).returncode == 0
    assert ssh_run(key, honest["ssh"]["port"], "head -c 20M /dev/urandom > /root/seen && sync").returncode == 0
    deadline = time.monotonic() + 60  # bounded: until the 150 MiB are written
    while time.monotonic() < deadline:
        held = ssh_run(key, hider["ssh"]["port"], "ls /root/hidden 2>/dev/null || echo gone").stdout.strip()
        if held == "gone":
            break
        time.sleep(0.5)
    time.sleep(1)

    report = run_pass(engine, str(tmp_path / "usage.json"), stop_timeout=2)
    entry = report["instances"][hider["name"]]
    assert entry["size_rw"] < 100 * MIB  # Docker's own figure does not see the file
    assert entry["size_deleted_open"] >= 150 * MIB
    assert entry["action"] == "stopped"
    assert engine.api.inspect_container(hider["id"])["State"]["Status"] == "exited"
    assert report["instances"][honest["name"]]["size_deleted_open"] == 0
    assert engine.api.inspect_container(honest["id"])["State"]["Status"] == "running"


def test_etc_hosts_and_its_siblings_count_against_the_limit_and_small_edits_stay_allowed(engine, policy, names, keypair,
                                                                                          tmp_path):
    """Docker keeps /etc/hosts, /etc/hostname and /etc/resolv.conf in its own folder, outside the
    writable layer the engine measures; a client may still edit them (root in her instance)."""
    manager = InstanceManager(engine, policy)
    key, public = keypair
    editor, filler = limited(manager, names, public, "64m", "editor", "filler")
    assert ssh_run(key, editor["ssh"]["port"], "echo '192.0.2.7 mybox' >> /etc/hosts").returncode == 0
    assert ssh_run(key, filler["ssh"]["port"], "head -c 100M /dev/zero >> /etc/hosts; sync").returncode == 0
    report = run_pass(engine, str(tmp_path / "usage.json"), stop_timeout=2)["instances"]
    assert report[filler["name"]]["size_host_files"] > 100 * MIB and report[filler["name"]]["action"] == "stopped"
    assert report[filler["name"]]["size_rw"] < 64 * MIB  # the engine alone would have seen nothing wrong
    assert engine.containers.get(filler["id"]).status == "exited"
    assert "action" not in report[editor["name"]] and engine.containers.get(editor["id"]).status == "running"
    with pytest.raises(Conflict, match="disk_limit"):  # and it is not started again while it holds that
        manager.start(filler["id"])


def test_an_instance_over_its_limit_is_not_started_again(engine, tmp_path, keypair):
    api = TestApp(make_app(config_from_dict(make_config(tmp_path))))
    alice = {"Authorization": f"Bearer {TOKENS['alice']}"}
    view = api.post_json("/v1/instances", {"public_key": keypair[1], "disk_limit": "20m"}, headers=alice).json
    try:
        assert ssh_run(keypair[0], view["ssh"]["port"], "head -c 40M /dev/urandom > /root/blob && sync").returncode == 0
        assert api.post(f"/v1/instances/{view['id']}/stop", headers=alice).json["state"] == "stopped"
        refused = api.post(f"/v1/instances/{view['id']}/start", headers=alice, expect_errors=True)
        assert refused.status_int == 409 and refused.json["field"] == "disk_limit", refused.text
        assert refused.json["detail"]["size_rw"] > refused.json["detail"]["disk_limit"] == 20 * MIB
        assert engine.api.inspect_container(view["id"])["State"]["Status"] == "exited"
        # The same rule for the core's own callers (the playbook module).
        with pytest.raises(Conflict):
            InstanceManager(engine, api.app.config["dockpool.services"].policy).start(view["id"])
    finally:
        engine.api.remove_container(view["id"], force=True)


def test_the_view_says_how_a_disk_limit_is_enforced(engine, policy, names, keypair):
    manager = InstanceManager(engine, policy)
    limited = manager.create(manager.spec({"name": names(), "public_key": keypair[1], "memory": "64m", "disk_limit": "1g"}),
                             wait=False)
    info = engine.api.info()
    backing = dict(p for p in info["DriverStatus"] if len(p) == 2).get("Backing Filesystem")
    enforced = limited["limits"]["disk_enforcement"]
    size = engine.api.inspect_container(limited["id"])["HostConfig"].get("StorageOpt")
    assert (size == {"size": str(1024**3)}) is (enforced == "quota")
    if info["Driver"] != "overlay2" or backing != "xfs":
        assert enforced == "watchdog"  # only overlay2 on xfs can hold a writable layer to a size

"""Instances under gVisor (runsc) on this machine's engine, next to runc ones: the runtime
chosen by the provider, per image and per instance, proven from inside; limits enforced by
the host's cgroups; an image that fails under gVisor refused naming the runtime, nothing left."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests
import yaml

from dockpool.errors import InvalidInput
from dockpool.gvisor import host_pids_limit
from dockpool.instances import InstanceManager
from dockpool.labels import RUNTIME
from support.ansible_run import run_playbook_file
from support.api_config import TOKENS, make_config
from support.api_process import api_process
from support.cgroups import cgroup_value
from support.images import build_test_image
from support.rfb import rfb_login, wait_for_rfb_login
from support.ssh import ssh_run

pytestmark = pytest.mark.engine
MIB = 1024**2


@pytest.fixture(scope="module")
def gvisor(engine) -> None:
    if "runsc" not in (engine.api.info().get("Runtimes") or {}):
        pytest.skip("runsc is not registered with this engine (scripts/setup.sh registers it)")


def wait_for_login(key, port: int, attempts: int = 20) -> bool:
    """A login succeeds within 10 s (a flood's processes end in 4 s)."""
    for _ in range(attempts):
        if ssh_run(key, port, "true").returncode == 0:
            return True
        time.sleep(0.5)
    return False


def kernel(key: str, port: int) -> str:
    """What the instance's kernel says it is: gVisor's log starts with 'Starting gVisor'."""
    login = ssh_run(key, port, "dmesg 2>/dev/null | head -1; uname -r")
    assert login.returncode == 0, login.stderr
    return login.stdout


def test_the_provider_runtime_runs_instances_under_gvisor_with_their_limits(gvisor, engine, policy, names, keypair):
    manager = InstanceManager(engine, replace(policy, runtime="runsc"))
    view = manager.create(manager.spec({"name": names(), "public_key": keypair[1], "memory": "200m",
                                        "pids_limit": 77, "cpu_share": 0.5}))
    assert view["runtime"] == "runsc"
    attrs = engine.api.inspect_container(view["id"])
    assert attrs["HostConfig"]["Runtime"] == "runsc" and attrs["Config"]["Labels"][RUNTIME] == "runsc"
    assert "Starting gVisor" in kernel(keypair[0], view["ssh"]["port"])
    # The host's cgroups hold the sandbox to the limits, and gVisor shows the memory limit inside.
    assert int(cgroup_value(view["id"], "memory")) == 200 * MIB
    # The pids limit counts the sandbox's host threads under gVisor: room is made for them.
    assert view["limits"]["pids_limit"] == 77 and cgroup_value(view["id"], "pids") == str(host_pids_limit(77, "runsc"))
    assert cgroup_value(view["id"], "cpu_quota").split()[0] == "50000"
    inside = ssh_run(keypair[0], view["ssh"]["port"], "grep MemTotal /proc/meminfo")
    assert inside.stdout.split()[1] == str(200 * 1024), inside.stdout
    # About the processes asked for run. Far more: gVisor's sandbox cannot make the host threads it
    # needs and dies (runc would refuse the forks instead); the engine starts it again and it answers.
    many = "n=0; for i in $(seq 1 {count}); do sleep 4 & n=$((n+1)); done 2>/dev/null; echo started $n; wait"
    ran = ssh_run(keypair[0], view["ssh"]["port"], many.format(count=50))
    assert ran.stdout.strip() == "started 50", ran.stdout + ran.stderr
    flood = ssh_run(keypair[0], view["ssh"]["port"], many.format(count=200) + " 2>&1 | tail -2")
    assert "started 200" not in flood.stdout, flood.stdout
    assert wait_for_login(keypair[0], view["ssh"]["port"])
    state = engine.api.inspect_container(view["id"])
    assert state["State"]["Running"] and state["RestartCount"] <= 1, state["State"]


def test_an_image_override_and_an_operators_choice_run_under_runc(gvisor, engine, policy, names, keypair):
    manager = InstanceManager(engine, replace(policy, runtime="runsc", image_runtimes=(("debian-sshd", "runc"),)))
    overridden = manager.create(manager.spec({"name": names(), "public_key": keypair[1], "memory": "128m"}))
    assert overridden["runtime"] == "runc" and "Starting gVisor" not in kernel(keypair[0], overridden["ssh"]["port"])
    plain = InstanceManager(engine, policy)
    chosen = plain.create(plain.spec({"name": names(), "public_key": keypair[1], "memory": "128m", "runtime": "runsc"}))
    assert chosen["runtime"] == "runsc" and "Starting gVisor" in kernel(keypair[0], chosen["ssh"]["port"])


def test_an_image_that_fails_under_gvisor_is_refused_naming_the_runtime_and_leaves_nothing(
        gvisor, engine, policy, names, keypair, no_leak):
    image = build_test_image(engine, "needs-pidfd")
    runc = InstanceManager(engine, policy)
    works = runc.create(runc.spec({"name": names(), "image": image, "public_key": keypair[1], "memory": "128m"}))
    assert ssh_run(keypair[0], works["ssh"]["port"], "true").returncode == 0  # the image itself is sound
    gvisor_manager = InstanceManager(engine, replace(policy, runtime="runsc"))
    with no_leak():
        with pytest.raises(InvalidInput) as refused:
            gvisor_manager.create(gvisor_manager.spec({"name": names(), "image": image, "public_key": keypair[1],
                                                       "memory": "128m"}))
    assert "under runtime runsc" in refused.value.message and refused.value.field == "image", refused.value.message


def test_a_runtime_setting_outside_runc_and_runsc_is_refused_naming_the_field(policy):
    with pytest.raises(InvalidInput) as refused:
        replace(policy, runtime="kata")
    assert refused.value.field == "runtime" and "runc, runsc" in refused.value.message
    with pytest.raises(InvalidInput) as per_image:
        replace(policy, image_runtimes=(("desktop", "crun"),))
    assert per_image.value.field == "image_runtimes[desktop]"


def test_a_desktop_answers_vnc_under_gvisor(gvisor, engine, policy, names, keypair):
    manager = InstanceManager(engine, replace(policy, runtime="runsc"))
    view = manager.create(manager.spec({"name": names(), "image": "desktop", "public_key": keypair[1], "memory": "384m"}))
    assert view["runtime"] == "runsc" and "Starting gVisor" in kernel(keypair[0], view["ssh"]["port"])
    port = int(view["desktop"]["vnc_address"].rsplit(":", 1)[1])
    version, accepted = wait_for_rfb_login("127.0.0.1", port, view["desktop"]["vnc_password"])
    assert version.startswith("RFB 003.") and accepted
    assert rfb_login("127.0.0.1", port, "wrong123")[1] is False


def test_the_api_names_the_runtime_when_an_image_fails_under_gvisor(gvisor, engine, tmp_path, keypair, no_leak):
    engine.images.get(build_test_image(engine, "needs-pidfd")).tag("dockpool/needs-pidfd", "latest")
    settings = make_config(tmp_path, images=["needs-pidfd"])
    policy_file = Path(settings["policy_file"])
    policy_file.write_text(json.dumps({**json.loads(policy_file.read_text()), "runtime": "runsc"}))
    try:
        with api_process(tmp_path, settings) as url, no_leak():
            answer = requests.post(f"{url}/v1/instances", json={"image": "needs-pidfd", "public_key": keypair[1]},
                                   headers={"Authorization": f"Bearer {TOKENS['alice']}"}, timeout=120)
            assert answer.status_code == 400, answer.text
            assert "under runtime runsc" in answer.json()["error"] and answer.json()["field"] == "image"
    finally:
        engine.images.remove("dockpool/needs-pidfd:latest")


def test_the_role_refuses_gvisor_where_it_cannot_run_before_touching_the_engine(engine, tmp_path):
    """An unprivileged container as the host (Debian's runsc binary inside, read-only): the
    role's check fails saying why and what to do, and no daemon.json is written."""
    host = engine.containers.run("local/debian:bookworm", ["sleep", "300"], detach=True, remove=True,
                                 volumes={"/usr/bin/runsc": {"bind": "/usr/bin/runsc", "mode": "ro"}})
    try:
        inventory = tmp_path / "inventory.ini"
        inventory.write_text(f"{host.name} ansible_connection=community.docker.docker "
                             "ansible_python_interpreter=/usr/bin/python3\n")
        playbook = tmp_path / "gvisor.yml"
        playbook.write_text(yaml.safe_dump([{"name": "gVisor check", "hosts": host.name, "gather_facts": False,
                                             "vars": {"docker_engine_instance_runtime": "runsc"},
                                             "tasks": [{"ansible.builtin.include_role": {"name": "docker_engine",
                                                                                          "tasks_from": "gvisor.yml"}}]}]))
        result = run_playbook_file(playbook, inventory=str(inventory), host=host.name)
        assert result.rc == 2 and result.stats.get("failures") == 1, result.raw
        message = result.tasks[-1]["msg"]
        assert "runsc cannot run on this host" in message and "cgroup" in message, message
        assert "docker_engine_instance_runtime: runc" in message and "Docker was left as it was" in message
        assert host.exec_run(["test", "-e", "/etc/docker/daemon.json"]).exit_code == 1
    finally:
        host.remove(force=True)

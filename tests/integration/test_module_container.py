"""dockpool_container through real ansible-playbook runs, against the real engine and a real ssh client."""
from __future__ import annotations

import pytest

from dockpool.cputopology import parse_cpulist, read_topology
from dockpool.labels import MANAGED_FILTER
from support.ansible_run import run_playbook
from support.cgroups import cgroup_value
from support.ssh import ssh_password_attempt, ssh_run

pytestmark = pytest.mark.engine
MIB = 1024**2


@pytest.fixture
def task(provider_settings):
    """A dockpool_container task with the test provider settings."""

    def make(**params) -> dict:
        return {"name": f"instance {params.get('name')}", "dockpool_container": {"provider": provider_settings, **params}}

    return make


def test_playbook_instance_reachable_limited_and_idempotent(tmp_path, engine, names, keypair, task):
    key, public = keypair
    name = names()
    play = [task(name=name, public_key=public, memory="256m", memory_reservation="128m", pids_limit=100, extra_ports=2)]
    first = run_playbook(tmp_path, play)
    assert first.rc == 0 and first.changed == 1, first.raw
    instance = first.result()["instance"]
    assert instance["state"] == "running"
    assert first.result()["actions"] == ["created", "started"]
    port = instance["ssh"]["port"]
    assert instance["ssh"]["command"] == f"ssh -p {port} root@127.0.0.1"
    login = ssh_run(key, port, "hostname")
    assert login.returncode == 0 and login.stdout.strip() == name, login.stderr
    assert "Permission denied (publickey)" in ssh_password_attempt(port).stderr
    host = engine.api.inspect_container(instance["id"])["HostConfig"]
    assert (host["Memory"], host["MemoryReservation"], host["PidsLimit"]) == (256 * MIB, 128 * MIB, 100)
    assert cgroup_value(instance["id"], "memory") == str(256 * MIB)
    assert cgroup_value(instance["id"], "memory_reservation") == str(128 * MIB)
    assert cgroup_value(instance["id"], "pids") == "100"
    names_ports = [(p["name"], p["container_port"] == p["host_port"]) for p in instance["ports"]]
    assert names_ports == [("SSH", False), ("extra-1", True), ("extra-2", True)]
    assert instance["ports"][0]["description"] == "SSH login with the client's key"

    second = run_playbook(tmp_path, play)
    assert second.rc == 0 and second.changed == 0, second.raw
    assert second.result()["instance"]["id"] == instance["id"]


def test_check_mode_changes_nothing(tmp_path, engine, names, keypair, task):
    name = names()
    play = [task(name=name, public_key=keypair[1], memory="128m")]
    predicted = run_playbook(tmp_path, play, check=True, diff=True)
    assert predicted.rc == 0 and predicted.changed == 1
    assert predicted.result()["instance"]["ssh"]["port"] >= 43000
    assert predicted.result()["diff"]["after"]["state"] == "running"
    assert not engine.containers.list(all=True, filters={"name": f"^/{name}$"})

    created = run_playbook(tmp_path, play)
    assert created.rc == 0
    container_id = created.result()["instance"]["id"]
    for state in ("stopped", "absent"):
        dry = run_playbook(tmp_path, [task(name=name, state=state, public_key=keypair[1], memory="128m")], check=True)
        assert dry.rc == 0 and dry.changed == 1
        assert engine.api.inspect_container(container_id)["State"]["Status"] == "running"
    dry_recreate = run_playbook(tmp_path, [task(name=name, public_key=keypair[1], memory="256m", recreate=True)], check=True)
    assert dry_recreate.changed == 1 and dry_recreate.result()["actions"] == ["recreated"]
    assert engine.api.inspect_container(container_id)["HostConfig"]["Memory"] == 128 * MIB


def test_stop_keeps_start_resumes_absent_removes(tmp_path, engine, names, keypair, task):
    key, public = keypair
    name = names()
    base = dict(name=name, public_key=public, memory="128m")
    created = run_playbook(tmp_path, [task(**base)]).result()["instance"]
    assert ssh_run(key, created["ssh"]["port"], "echo kept > /root/note").returncode == 0

    stopped = run_playbook(tmp_path, [task(state="stopped", **base)])
    assert stopped.changed == 1 and stopped.result()["instance"]["state"] == "stopped"
    assert engine.api.inspect_container(created["id"])["State"]["Status"] == "exited"
    assert run_playbook(tmp_path, [task(state="stopped", **base)]).changed == 0

    started = run_playbook(tmp_path, [task(state="started", **base)])
    assert started.changed == 1 and started.result()["instance"]["id"] == created["id"]
    assert ssh_run(key, created["ssh"]["port"], "cat /root/note").stdout.strip() == "kept"

    removed = run_playbook(tmp_path, [{"dockpool_container": {"name": name, "state": "absent"}}])
    assert removed.changed == 1 and removed.result()["instance"] is None
    assert not engine.containers.list(all=True, filters={"name": f"^/{name}$"})
    assert run_playbook(tmp_path, [{"dockpool_container": {"name": name, "state": "absent"}}]).changed == 0


def test_changes_that_need_recreate_say_so(tmp_path, engine, names, keypair, other_keypair, task):
    name = names()
    created = run_playbook(tmp_path, [task(name=name, public_key=keypair[1], memory="128m")]).result()["instance"]

    refused = run_playbook(tmp_path, [task(name=name, public_key=keypair[1], memory="256m", extra_ports=1)])
    assert refused.rc != 0
    message = refused.result()["msg"]
    assert "memory: 134217728 -> 268435456" in message and "extra_ports: 0 -> 1" in message and "recreate: true" in message
    assert engine.api.inspect_container(created["id"])["HostConfig"]["Memory"] == 128 * MIB

    rekeyed = run_playbook(tmp_path, [task(name=name, public_key=other_keypair[1], memory="128m")])
    assert rekeyed.rc != 0 and "public_key: SHA256:" in rekeyed.result()["msg"]

    recreated = run_playbook(tmp_path, [task(name=name, public_key=other_keypair[1], memory="256m", recreate=True)], diff=True)
    assert recreated.changed == 1 and recreated.result()["actions"] == ["recreated"]
    assert recreated.result()["diff"]["before"]["public_key"] != recreated.result()["diff"]["after"]["public_key"]
    new = recreated.result()["instance"]
    assert new["id"] != created["id"] and new["limits"]["memory"] == 256 * MIB
    assert ssh_run(other_keypair[0], new["ssh"]["port"], "true").returncode == 0
    assert ssh_run(keypair[0], new["ssh"]["port"], "true").returncode == 255


def test_two_instances_never_share_a_cpu_or_a_port(tmp_path, engine, names, keypair, task):
    topo = read_topology()
    others = [c.name for c in engine.containers.list(all=True, filters={"label": [MANAGED_FILTER, "dockpool.cpus="]})]
    if topo.physical_cores < 2 or others:
        pytest.skip(f"needs two cores and no shared instances of others (found {others})")
    play = [task(name=names("a"), public_key=keypair[1], cpus=1, memory="64m"), task(name=names("b"), public_key=keypair[1], cpus=1, memory="64m")]
    result = run_playbook(tmp_path, play)
    assert result.rc == 0, result.raw
    first, second = (t["instance"] for t in result.tasks)
    cpus_a = set(parse_cpulist(cgroup_value(first["id"], "cpuset")))
    cpus_b = set(parse_cpulist(cgroup_value(second["id"], "cpuset")))
    assert cpus_a and cpus_b and not cpus_a & cpus_b
    assert first["ssh"]["port"] != second["ssh"]["port"]


@pytest.mark.parametrize(
    "params, field_words",
    [
        ({"image": "no-such-image"}, "image: 'no-such-image' is not available"),
        ({"extra_ports": -1}, "extra_ports: -1 is outside 0-8"),
        ({"extra_ports": 1000000}, "extra_ports: 1000000 is outside 0-8"),
        ({"public_key": "ssh-ed25519 AAAAnotakey"}, "public_key:"),
        ({"public_key": 'command="sh" ssh-ed25519 AAAA'}, "public_key: key type"),
        ({"name": "bad;name"}, "name: 'bad;name' is not allowed"),
        ({"name": "../etc"}, "name: '../etc' is not allowed"),
        ({"memory": "512x"}, "memory: '512x' is not a size"),
        ({"cpus": 99}, "cpus:"),
        ({"gpu": True}, "gpu: this provider has no NVIDIA GPU"),
        ({"provider": {"port_range": "43995-43995", "bind_address": "127.0.0.1"}, "extra_ports": 3}, "ports: 4 free host port(s) are needed"),
    ],
)
def test_bad_input_fails_clearly_and_leaves_nothing(tmp_path, names, keypair, task, no_leak, params, field_words):
    merged = {"name": names(), "public_key": keypair[1], "memory": "64m", **params}
    with no_leak():
        result = run_playbook(tmp_path, [task(**merged) if "provider" not in params else {"dockpool_container": merged}])
    assert result.rc != 0
    assert field_words in result.result()["msg"], result.result()["msg"]


def test_name_of_a_foreign_container_is_refused(tmp_path, engine, names, keypair, task):
    name = names("foreign")
    engine.containers.create("local/debian:bookworm", name=name, command=["true"])
    result = run_playbook(tmp_path, [task(name=name, public_key=keypair[1], memory="64m")])
    assert result.rc != 0 and "not managed by dockpool" in result.result()["msg"]
    absent = run_playbook(tmp_path, [{"dockpool_container": {"name": name, "state": "absent"}}])
    assert absent.changed == 0 and engine.containers.get(name)


def test_stopped_started_and_absent_need_only_the_name(tmp_path, engine, names, keypair, task):
    name = names()
    made = run_playbook(tmp_path, [task(name=name, public_key=keypair[1], memory="128m", extra_ports=1, cpu_share=0.5,
                                        owner="alice", disk_limit="1g")])
    assert made.rc == 0 and made.changed == 1, made.raw
    # Only what a task gives is compared (community.docker's contract): the rest stays as the instance has it.
    stopped = run_playbook(tmp_path, [task(name=name, state="stopped")], diff=True)
    assert stopped.rc == 0 and stopped.changed == 1 and stopped.result()["actions"] == ["stopped"], stopped.raw
    diff = stopped.result()["diff"]
    assert {k for k in diff["after"] if diff["after"][k] != diff["before"][k]} == {"state"}
    assert engine.api.inspect_container(name)["State"]["Status"] == "exited"
    again = run_playbook(tmp_path, [task(name=name, state="stopped")])
    assert again.rc == 0 and again.changed == 0, again.raw
    started = run_playbook(tmp_path, [task(name=name, state="started")])
    assert started.rc == 0 and started.result()["actions"] == ["started"], started.raw
    # What is given is still compared.
    differs = run_playbook(tmp_path, [task(name=name, state="started", extra_ports=2)])
    assert differs.rc != 0 and "extra_ports: 1 -> 2" in differs.raw
    gone = run_playbook(tmp_path, [task(name=name, state="absent")])
    assert gone.rc == 0 and gone.changed == 1 and not engine.containers.list(all=True, filters={"name": f"^/{name}$"})


def test_cpus_and_cpu_share_are_refused_together_by_the_argument_spec(tmp_path, engine, names, keypair, task):
    both = run_playbook(tmp_path, [task(name=names(), public_key=keypair[1], cpus=1, cpu_share=0.5)])
    assert both.rc != 0 and "parameters are mutually exclusive: cpus|cpu_share" in both.raw

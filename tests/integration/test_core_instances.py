"""The core against the real engine: reachability, hardening, limits, placement, cleanup."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from dockpool import instances
from dockpool.cputopology import Topology, format_cpulist, parse_cpulist, read_topology
from dockpool.engine import connect
from dockpool.errors import CapacityExhausted, Conflict, EngineUnavailable, InvalidInput, NotFound
from dockpool.instances import InstanceManager
from dockpool.labels import DISK_LIMIT, MANAGED_BY, OWNER
from dockpool.policy import Policy, PortRange
from support.cgroups import cgroup_value
from support.images import build_test_image
from support.ssh import ssh_password_attempt, ssh_run

pytestmark = pytest.mark.engine
MIB = 1024**2


def two_cores() -> Topology:
    """The host's first two physical cores: real CPUs, so Docker enforces the cpusets."""
    real = read_topology()
    if real.physical_cores < 2:
        pytest.skip("needs two physical cores")
    return Topology(cores=real.cores[:2])


@pytest.fixture
def manager(engine, policy):
    return InstanceManager(engine, policy)


def test_instance_is_reachable_with_its_key_only(manager, names, keypair, other_keypair):
    key, public = keypair
    view = manager.create(manager.spec({"name": names(), "public_key": public, "memory": "256m"}))
    port = view["ssh"]["port"]
    login = ssh_run(key, port, "id -un; stat -c '%a %U' ~/.ssh ~/.ssh/authorized_keys; cat ~/.ssh/authorized_keys")
    assert login.returncode == 0, login.stderr
    lines = login.stdout.splitlines()
    assert lines[:3] == ["root", "700 root", "600 root"]
    assert lines[3] == public
    refused = ssh_password_attempt(port)
    assert refused.returncode == 255 and "Permission denied (publickey)" in refused.stderr
    assert ssh_run(other_keypair[0], port, "true").returncode == 255


def test_hardened_by_default(manager, engine, names, keypair):
    view = manager.create(manager.spec({"name": names(), "public_key": keypair[1], "memory": "256m", "pids_limit": 100}))
    host = engine.api.inspect_container(view["id"])["HostConfig"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["CapDrop"] == ["ALL"] and "SYS_ADMIN" not in host["CapAdd"] and "NET_RAW" not in host["CapAdd"]
    assert host["Privileged"] is False
    assert not host.get("Binds") and not engine.api.inspect_container(view["id"])["Mounts"]
    assert host["PidsLimit"] == 100
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["Init"] is True
    assert host["MemorySwap"] == host["Memory"] == 256 * MIB
    assert {b["HostIp"] for bindings in host["PortBindings"].values() for b in bindings} == {"127.0.0.1"}
    caps = ssh_run(keypair[0], view["ssh"]["port"], "grep CapEff /proc/1/status; ls /var/run/docker.sock 2>&1 || true")
    assert "No such file" in caps.stdout
    # No IPv6, not even link-local: over fe80:: the bridge would bypass the IPv4 firewall.
    assert host["Sysctls"] == {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
    inet6 = ssh_run(keypair[0], view["ssh"]["port"], "cat /proc/net/if_inet6; echo 0 > /proc/sys/net/ipv6/conf/all/disable_ipv6")
    assert {line.split()[-1] for line in inet6.stdout.splitlines() if line.strip()} <= {"lo"}, inet6.stdout
    assert inet6.returncode != 0  # and the instance cannot turn it back on


def test_limits_reach_inspect_and_the_cgroup(manager, engine, names, keypair):
    topo = two_cores()
    manager.topology = topo
    view = manager.create(
        manager.spec({"name": names(), "public_key": keypair[1], "cpus": 1, "memory": "300m", "memory_reservation": "200m", "pids_limit": 64})
    )
    host = engine.api.inspect_container(view["id"])["HostConfig"]
    assert (host["Memory"], host["MemoryReservation"], host["PidsLimit"]) == (300 * MIB, 200 * MIB, 64)
    assert host["CpusetCpus"] == view["limits"]["cpuset"] == ",".join(map(str, topo.cores[-1]))
    assert cgroup_value(view["id"], "memory") == str(300 * MIB)
    assert cgroup_value(view["id"], "memory_reservation") == str(200 * MIB)
    assert parse_cpulist(cgroup_value(view["id"], "cpuset")) == list(topo.cores[-1])
    assert cgroup_value(view["id"], "pids") == "64"
    inside = ssh_run(keypair[0], view["ssh"]["port"], "nproc")
    assert inside.stdout.strip() == str(len(topo.cores[-1]))


def test_shared_instances_run_under_a_quota(manager, engine, names, keypair):
    view = manager.create(manager.spec({"name": names(), "public_key": keypair[1], "cpu_share": 0.25, "memory": "128m"}))
    assert view["limits"]["cpu_share"] == 0.25
    assert cgroup_value(view["id"], "cpu_quota") in ("25000", "25000 100000")


def test_dedicated_cores_never_overlap_and_shared_instances_move_aside(engine, policy, names, keypair, no_leak):
    topo = two_cores()
    manager = InstanceManager(engine, policy, topology=topo)
    others = [r.name for r in manager.records() if not r.dedicated]
    if others:
        pytest.skip(f"shared instances not made by this test exist ({others}); this test needs a clean engine")
    shared = manager.create(manager.spec({"name": names("s"), "public_key": keypair[1], "memory": "128m"}), wait=False)
    assert shared["limits"]["cpuset"] == format_cpulist(topo.logical_cpus)
    first = manager.create(manager.spec({"name": names("d1"), "public_key": keypair[1], "cpus": 1, "memory": "128m"}), wait=False)
    first_cpus = set(parse_cpulist(first["limits"]["cpuset"]))
    shared_now = set(parse_cpulist(engine.api.inspect_container(shared["id"])["HostConfig"]["CpusetCpus"]))
    assert first_cpus and not first_cpus & shared_now, "the shared instance still runs on a dedicated core"
    with no_leak():
        with pytest.raises(CapacityExhausted) as info:
            manager.create(manager.spec({"name": names("d2"), "public_key": keypair[1], "cpus": 1, "memory": "128m"}))
        assert "without any CPU" in info.value.message
    manager.remove(shared["id"])
    second = manager.create(manager.spec({"name": names("d2b"), "public_key": keypair[1], "cpus": 1, "memory": "128m"}), wait=False)
    assert not set(parse_cpulist(second["limits"]["cpuset"])) & first_cpus
    with no_leak():
        with pytest.raises(CapacityExhausted):
            manager.create(manager.spec({"name": names("s2"), "public_key": keypair[1], "memory": "128m"}))
        with pytest.raises(CapacityExhausted):
            manager.create(manager.spec({"name": names("d3"), "public_key": keypair[1], "cpus": 1, "memory": "128m"}))


def test_parallel_creations_in_threads_get_distinct_ports(engine, policy, names, keypair):
    wanted = [names(f"p{i}") for i in range(6)]
    barrier = threading.Barrier(len(wanted))

    def create(name: str) -> dict:
        manager = InstanceManager(connect(), policy)  # separate clients, as separate API workers would have
        spec = manager.spec({"name": name, "public_key": keypair[1], "memory": "64m", "cpu_share": 0.1, "extra_ports": 1})
        barrier.wait()
        return manager.create(spec, wait=False)

    with ThreadPoolExecutor(len(wanted)) as pool:
        views = list(pool.map(create, wanted))
    ports = [p["host_port"] for v in views for p in v["ports"]]
    assert len(ports) == 12 and len(set(ports)) == 12


def test_parallel_creations_in_processes_get_distinct_ports(engine, names, keypair):
    script = (
        "import json, sys\n"
        "from dockpool.engine import connect\nfrom dockpool.instances import InstanceManager\n"
        "from dockpool.policy import Policy, PortRange\n"
        "m = InstanceManager(connect(), Policy(port_range=PortRange(43000, 43999), bind_address='127.0.0.1'))\n"
        "views = [m.create(m.spec({'name': n, 'public_key': sys.argv[1], 'memory': '64m', 'cpu_share': 0.1}), wait=False) for n in sys.argv[2:]]\n"
        "print(json.dumps([v['ssh']['port'] for v in views]))\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, keypair[1], *[names(f"q{w}{i}") for i in range(3)]], stdout=subprocess.PIPE, env=env, text=True)
        for w in range(3)
    ]
    ports = [port for p in procs for port in json.loads(p.communicate(timeout=120)[0])]
    assert all(p.returncode == 0 for p in procs)
    assert len(ports) == 9 and len(set(ports)) == 9


def test_stop_keeps_the_instance_and_start_resumes_it(manager, names, keypair):
    key, public = keypair
    view = manager.create(manager.spec({"name": names(), "public_key": public, "memory": "128m"}))
    assert ssh_run(key, view["ssh"]["port"], "echo kept > /root/note").returncode == 0
    stopped = manager.stop(view["name"], timeout=2)
    assert stopped["state"] == "stopped" and stopped["id"] == view["id"]
    # A stopped instance keeps its ports: a new instance does not get them.
    other = manager.create(manager.spec({"name": view["name"] + "x", "public_key": public, "memory": "64m"}), wait=False)
    assert other["ssh"]["port"] != view["ssh"]["port"]
    manager.remove(other["id"])
    started = manager.start(view["name"])
    assert started["state"] == "running" and started["ssh"]["port"] == view["ssh"]["port"]
    assert ssh_run(key, view["ssh"]["port"], "cat /root/note").stdout.strip() == "kept"
    assert manager.remove(view["name"]) is True
    assert manager.find(view["name"]) is None
    assert manager.remove(view["name"]) is False  # already gone counts as removed


@pytest.fixture(scope="module")
def test_images(engine):
    tags = {kind: build_test_image(engine, kind) for kind in ("silent", "dying", "plain-sshd")}
    yield tags
    for tag in tags.values():
        engine.images.remove(tag, force=True)


def test_images_without_the_key_label_get_the_key_written_into_them(manager, names, keypair, test_images, engine):
    view = manager.create(manager.spec({"name": names(), "public_key": keypair[1], "image": test_images["plain-sshd"],
                                        "memory": "128m"}))
    assert "DOCKPOOL_AUTHORIZED_KEY" not in str(engine.api.inspect_container(view["id"])["Config"]["Env"])
    login = ssh_run(keypair[0], view["ssh"]["port"], "stat -c '%a %U' ~/.ssh/authorized_keys")
    assert login.returncode == 0 and login.stdout.strip() == "600 root", login.stderr


def test_every_failure_leaves_nothing_behind(engine, policy, names, keypair, no_leak, test_images):
    manager = InstanceManager(engine, policy)
    one_port = InstanceManager(engine, Policy(port_range=PortRange(43990, 43990), bind_address="127.0.0.1"))
    cases = [
        (manager, {"image": "no-such-image"}, NotFound, "image"),
        (manager, {"gpu": True}, InvalidInput, "gpu"),
        (manager, {"ssh_user": "nobody-here"}, InvalidInput, "ssh_user"),  # fails after the container exists
        (one_port, {"extra_ports": 1}, CapacityExhausted, "extra_ports"),
    ]
    with no_leak():
        for mgr, params, error, field in cases:
            with pytest.raises(error) as info:
                mgr.create(mgr.spec({"name": names(), "public_key": keypair[1], "memory": "64m", **params}))
            assert info.value.field == field, info.value.message
        with pytest.raises(EngineUnavailable) as info:
            manager.create(manager.spec({"name": names(), "public_key": keypair[1], "image": test_images["silent"],
                                         "memory": "64m"}), wait_timeout=2)
        assert "did not answer" in info.value.message
        with pytest.raises(InvalidInput) as info:  # noticed at once, not after the timeout
            manager.create(manager.spec({"name": names(), "public_key": keypair[1], "image": test_images["dying"],
                                         "memory": "64m"}), wait_timeout=60)
        assert "stopped before sshd answered" in info.value.message


def test_a_port_taken_before_start_is_planned_again(engine, names, keypair, no_leak, monkeypatch):
    """A port probed free can be taken by another program (an outgoing connection's source
    port, a listener) before the engine binds it: the creation is planned again, up to three
    times, and each abandoned container is removed."""
    manager = InstanceManager(engine, Policy(port_range=PortRange(43970, 43979), bind_address="127.0.0.1"))
    install_key = InstanceManager._install_key
    squatters: list[socket.socket] = []

    def take_the_planned_port(self, container, spec, image, times: list[int]) -> None:
        if len(squatters) < times[0]:  # another program binds the chosen port in between
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the last test's TIME_WAIT
            sock.bind(("127.0.0.1", self._ssh_port(container.labels)))
            sock.listen()
            squatters.append(sock)
        install_key(self, container, spec, image)

    try:
        with no_leak():
            times = [1]
            monkeypatch.setattr(InstanceManager, "_install_key", lambda *a: take_the_planned_port(*a, times))
            view = manager.create(manager.spec({"name": names(), "public_key": keypair[1], "memory": "64m"}))
            assert view["ssh"]["port"] != squatters[0].getsockname()[1]
            assert ssh_run(keypair[0], view["ssh"]["port"], "true").returncode == 0
            manager.remove(view["id"])
            times[0] = 4  # every attempt loses its port: a clear 503, nothing left
            with pytest.raises(EngineUnavailable) as info:
                manager.create(manager.spec({"name": names(), "public_key": keypair[1], "memory": "64m"}))
            assert "address already in use" in info.value.message and len(squatters) == 4
            # The squatter leaves during the pause: its port is free again, yet this creation,
            # which lost it once, plans without it (a busy engine may still be releasing it).
            times[0] = 5
            lost: list[int] = []

            def squatter_leaves(seconds: float) -> None:
                lost.append(squatters[-1].getsockname()[1])
                squatters[-1].close()

            monkeypatch.setattr(instances, "time", SimpleNamespace(sleep=squatter_leaves))
            view = manager.create(manager.spec({"name": names(), "public_key": keypair[1], "memory": "64m"}))
            assert len(lost) == 1 and view["ssh"]["port"] != lost[0]
            assert ssh_run(keypair[0], view["ssh"]["port"], "true").returncode == 0
            manager.remove(view["id"])
    finally:
        for sock in squatters:
            sock.close()


def test_foreign_containers_are_never_touched(engine, manager, names, keypair):
    name = names("foreign")
    engine.containers.create("local/debian:bookworm", name=name, command=["true"])
    assert manager.find(name) is None
    assert manager.remove(name) is False
    with pytest.raises(Conflict):
        manager.create(manager.spec({"name": name, "public_key": keypair[1], "memory": "64m"}))
    assert engine.containers.get(name).name == name
    assert name not in [v["name"] for v in manager.list()]


@pytest.mark.parametrize("ref", ["../etc", "a b", "x;rm", "/abs"])
def test_lookups_refuse_traversal_and_injection(manager, ref):
    with pytest.raises(InvalidInput):
        manager.find(ref)


def test_view_is_the_same_from_labels_and_after_restart_of_the_caller(engine, policy, names, keypair):
    first = InstanceManager(engine, policy)
    view = first.create(first.spec({"name": names(), "public_key": keypair[1], "memory": "96m", "disk_limit": "1g", "owner": "carol"}))
    fresh = InstanceManager(connect(), policy)  # a restarted service: nothing but the engine
    again = fresh.get(view["name"])
    assert again == view
    assert [v for v in fresh.list(owner="carol") if v["id"] == view["id"]] == [view]
    assert all(v["owner"] == "carol" for v in fresh.list(owner="carol"))
    assert view["id"] not in [v["id"] for v in fresh.list(owner="nobody-else")]
    labels = engine.api.inspect_container(view["id"])["Config"]["Labels"]
    assert labels[MANAGED_BY] == "dockpool" and labels[OWNER] == "carol" and labels[DISK_LIMIT] == str(1024 * MIB)

import pytest

from dockpool import labels as L
from dockpool.errors import InvalidInput
from dockpool.policy import Policy, PortRange, load_policy, policy_from_settings
from dockpool.spec import build_spec
from support.keys import ED25519

GIB = 1024**3
POLICY = Policy(port_range=PortRange(40000, 40099), max_extra_ports=4, default_memory=GIB, max_memory=4 * GIB)


def spec(**params):
    return build_spec({"name": "alice-p1-1", **params}, POLICY, host_memory=16 * GIB, logical_cpus=8)


def test_defaults():
    s = spec()
    assert (s.image, s.owner, s.ssh_user, s.extra_ports, s.gpu) == ("debian-sshd", "operator", "root", 0, False)
    assert (s.cpus, s.cpu_share, s.memory, s.memory_reservation, s.disk_limit, s.pids_limit) == (None, 1.0, GIB, GIB, None, 512)
    assert s.public_key is None


def test_full_request():
    s = spec(public_key=ED25519, cpus=2, memory="2g", memory_reservation="1g", disk_limit="10g", extra_ports=3, owner="alice", gpu=True)
    assert (s.cpus, s.cpu_share, s.memory, s.memory_reservation, s.disk_limit) == (2, None, 2 * GIB, GIB, 10 * GIB)
    assert s.public_key == ED25519 and s.gpu and s.owner == "alice"


@pytest.mark.parametrize(
    "params, field",
    [
        ({"name": "a/b"}, "name"),
        ({"name": "x; reboot"}, "name"),
        ({"image": "../../etc"}, "image"),
        ({"owner": "bob smith"}, "owner"),
        ({"public_key": "ssh-ed25519 AAAA"}, "public_key"),
        ({"extra_ports": -1}, "extra_ports"),
        ({"extra_ports": 5}, "extra_ports"),
        ({"extra_ports": 10**9}, "extra_ports"),
        ({"extra_ports": "two"}, "extra_ports"),
        ({"extra_ports": True}, "extra_ports"),
        ({"cpus": 0}, "cpus"),
        ({"cpus": 9}, "cpus"),
        ({"cpus": 1.5}, "cpus"),
        ({"cpus": 1, "cpu_share": 0.5}, "cpus"),
        ({"cpu_share": 0}, "cpu_share"),
        ({"cpu_share": 9}, "cpu_share"),
        ({"cpu_share": "nan"}, "cpu_share"),
        ({"cpu_share": "half"}, "cpu_share"),
        ({"memory": "512x"}, "memory"),
        ({"memory": "5g"}, "memory"),
        ({"memory": "1g", "memory_reservation": "2g"}, "memory_reservation"),
        ({"disk_limit": "lots"}, "disk_limit"),
        ({"gpu": "yes"}, "gpu"),
        ({"pids_limit": 3}, "pids_limit"),
    ],
)
def test_bad_input_names_its_field(params, field):
    with pytest.raises(InvalidInput) as info:
        spec(**params)
    assert info.value.field == field, info.value.message


def test_spec_labels_are_normalised_text():
    labels = L.spec_labels(spec(cpus=1, disk_limit="1g"))
    assert labels[L.CPUS] == "1" and labels[L.CPU_SHARE] == "" and labels[L.DISK_LIMIT] == str(GIB) and labels[L.GPU] == "false"


def test_view_rebuilt_from_labels_alone():
    s = spec(cpus=2, owner="alice", disk_limit="3g")
    ports = [L.PublishedPort("SSH", 22, 40005, "tcp", "ssh"), L.PublishedPort("extra-1", 40006, 40006)]
    record = L.Record("abc123", "alice-p1-1", L.instance_labels(s, ports, "2-3"), "exited", "2026-01-01T00:00:00Z")
    view = L.instance_view(record, "provider.example.org", shared_cpuset="0-1")
    assert view["state"] == "stopped" and view["status"] == "exited" and view["owner"] == "alice"
    assert view["ssh"] == {"user": "root", "host": "provider.example.org", "port": 40005, "command": "ssh -p 40005 root@provider.example.org"}
    assert [p["host_port"] for p in view["ports"]] == [40005, 40006]
    assert view["limits"] == {"cpus": 2, "cpuset": "2-3", "cpu_share": None, "memory": GIB, "memory_reservation": GIB,
                              "disk_limit": 3 * GIB, "disk_enforcement": "watchdog", "pids_limit": 512}
    assert L.dedicated_cpus(record.labels) == {2, 3}


def test_shared_instance_view_follows_the_pool():
    record = L.Record("abc", "n", L.instance_labels(spec(), [], "0-7"), "running", "")
    assert L.instance_view(record, "h", shared_cpuset="0-5")["limits"]["cpuset"] == "0-5"
    assert L.instance_view(record, "h", "0-5")["ssh"] is None
    assert L.dedicated_cpus(record.labels) == set()


def test_record_from_summary_and_attrs_agree():
    summary = {"Id": "x", "Names": ["/n1"], "Labels": {"a": "b"}, "State": "running", "Created": 0}
    attrs = {"Id": "x", "Name": "/n1", "Config": {"Labels": {"a": "b"}}, "State": {"Status": "running"}, "Created": "1970-01-01T00:00:00.123456789Z"}
    assert L.Record.from_summary(summary) == L.Record.from_attrs(attrs)


def test_bound_host_ports_from_inspect():
    attrs = {"HostConfig": {"PortBindings": {"22/tcp": [{"HostIp": "", "HostPort": "40001"}], "80/tcp": [{"HostPort": ""}], "81/tcp": None}}}
    assert L.bound_host_ports(attrs) == {40001}


def test_policy_from_settings_and_file(tmp_path):
    path = tmp_path / "provider.json"
    path.write_text('{"port_range": "41000-41999", "max_memory": "8g", "bind_address": "127.0.0.1"}')
    policy = load_policy(str(path), {"max_memory": "2g", "public_address": None})
    assert policy.port_range == PortRange(41000, 41999) and policy.max_memory == 2 * GIB
    assert policy.ssh_host == "127.0.0.1" and policy.probe_host == "127.0.0.1"
    assert load_policy(str(tmp_path / "absent.json")).port_range == PortRange(40000, 40999)


def test_the_public_address_is_what_clients_are_told():
    """One setting: clients are told the public address, whatever the instances bind to; without
    it the bind address, or loopback for every address (never the host's own name)."""
    assert policy_from_settings({"bind_address": "0.0.0.0", "public_address": "192.0.2.10"}).ssh_host == "192.0.2.10"
    assert policy_from_settings({"bind_address": "0.0.0.0"}).ssh_host == "127.0.0.1"
    assert policy_from_settings({"bind_address": "::"}).ssh_host == "::1"
    assert policy_from_settings({"bind_address": "10.1.2.3"}).ssh_host == "10.1.2.3"


@pytest.mark.parametrize(
    "settings, field",
    [({"bind_address": "localhost"}, "bind_address"), ({"colour": "red"}, "colour"), ({"port_range": "1-2"}, "port_range"),
     ({"pids_limit": 2}, "pids_limit"), ({"max_memory": "lots"}, "max_memory"),
     ({"public_address": "provider.example"}, "public_address"), ({"advertise_host": "10.0.0.1"}, "advertise_host")],
)
def test_policy_refuses_bad_settings(settings, field):
    with pytest.raises(InvalidInput) as info:
        policy_from_settings(settings)
    assert info.value.field == field


def test_corrupt_policy_file_is_a_clear_error(tmp_path):
    path = tmp_path / "provider.json"
    path.write_text("{not json")
    with pytest.raises(InvalidInput) as info:
        load_policy(str(path))
    assert str(path) in info.value.message

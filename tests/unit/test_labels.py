"""Labels: the record of what an instance was given, and the view rebuilt from it alone."""
import subprocess

from dockpool.labels import (
    CPU_SHARE,
    CPUS,
    DISK_LIMIT,
    GPU,
    PublishedPort,
    Record,
    bound_host_ports,
    dedicated_cpus,
    instance_labels,
    instance_view,
    spec_labels,
)
from support.specs import GIB, make_spec
from support.ssh import make_keypair


def test_spec_labels_are_normalised_text():
    labels = spec_labels(make_spec(cpus=1, disk_limit="1g"))
    assert labels[CPUS] == "1" and labels[CPU_SHARE] == "" and labels[DISK_LIMIT] == str(GIB) and labels[GPU] == "false"


def test_view_rebuilt_from_labels_alone():
    s = make_spec(cpus=2, owner="alice", disk_limit="3g")
    ports = [PublishedPort("SSH", 22, 40005, "tcp", "ssh"), PublishedPort("extra-1", 40006, 40006)]
    record = Record("abc123", "alice-p1-1", instance_labels(s, ports, "2-3"), "exited", "2026-01-01T00:00:00Z")
    view = instance_view(record, "provider.example.org", shared_cpuset="0-1")
    assert view["state"] == "stopped" and view["status"] == "exited" and view["owner"] == "alice"
    assert view["ssh"] == {"user": "root", "host": "provider.example.org", "port": 40005, "command": "ssh -p 40005 root@provider.example.org",
                           "key_fingerprint": None}
    assert [p["host_port"] for p in view["ports"]] == [40005, 40006]
    assert view["limits"] == {"cpus": 2, "cpuset": "2-3", "cpu_share": None, "memory": 4 * GIB, "memory_reservation": GIB,
                              "disk_limit": 3 * GIB, "disk_enforcement": "watchdog", "pids_limit": 512}
    assert dedicated_cpus(record.labels) == {2, 3}


def test_shared_instance_view_follows_the_pool():
    record = Record("abc", "n", instance_labels(make_spec(), [], "0-7"), "running", "")
    assert instance_view(record, "h", shared_cpuset="0-5")["limits"]["cpuset"] == "0-5"
    assert instance_view(record, "h", "0-5")["ssh"] is None
    assert dedicated_cpus(record.labels) == set()


def test_record_from_summary_and_attrs_agree():
    summary = {"Id": "x", "Names": ["/n1"], "Labels": {"a": "b"}, "State": "running", "Created": 0}
    attrs = {"Id": "x", "Name": "/n1", "Config": {"Labels": {"a": "b"}}, "State": {"Status": "running"}, "Created": "1970-01-01T00:00:00.123456789Z"}
    assert Record.from_summary(summary) == Record.from_attrs(attrs)


def test_bound_host_ports_from_inspect():
    attrs = {"HostConfig": {"PortBindings": {"22/tcp": [{"HostIp": "", "HostPort": "40001"}], "80/tcp": [{"HostPort": ""}], "81/tcp": None}}}
    assert bound_host_ports(attrs) == {40001}




def test_the_view_names_the_key_that_logs_in_as_ssh_keygen_does(tmp_path):
    """A client with several keys (or clones) tells which one an instance holds; the key itself is not shown."""
    _, public = make_keypair(tmp_path)
    ports = [PublishedPort("SSH", 22, 40005, "tcp", "ssh")]
    record = Record("abc", "alice-p1-1", instance_labels(make_spec(public_key=public), ports, "0-1"), "running", "")
    printed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "id_ed25519.pub")],
                             capture_output=True, text=True, check=True).stdout.split()[1]
    assert instance_view(record, "h", "0-1")["ssh"]["key_fingerprint"] == printed

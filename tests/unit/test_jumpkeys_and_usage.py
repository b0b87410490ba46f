import json
import signal
import subprocess
import sys
import time

import pytest

from dockpool import labels as L
from dockpool.atomicfile import read_json, write_json
from dockpool.jumpaccess import jump_key_lines
from dockpool.policy import Policy
from dockpool.spec import build_spec
from dockpool.usage import over_limit, read_usage
from support.keys import ED25519, RSA_3072


def record(name, key, ports, managed=True):
    spec = build_spec({"name": name, "public_key": key}, Policy(), 8 * 1024**3, 4)
    labels = L.instance_labels(spec, [L.PublishedPort(*p) for p in ports], "0")
    if not managed:
        labels.pop(L.MANAGED_BY)
    return L.Record(name, name, labels, "running", "")


def test_each_key_may_forward_to_its_own_instances_only():
    records = [
        record("a-1", ED25519, [("SSH", 22, 40000), ("extra-1", 40001, 40001)]),
        record("a-2", ED25519, [("SSH", 22, 40005)]),
        record("b-1", RSA_3072, [("SSH", 22, 40002)]),
        record("c-1", None, [("SSH", 22, 40003)]),  # no key: nobody reaches it through the jump
        record("x-1", RSA_3072, [("SSH", 22, 40009)], managed=False),
    ]
    lines = jump_key_lines(records, "127.0.0.1")
    assert len(lines) == 2  # one line per key, or sshd would honour only the first
    first = lines[0]
    assert first.startswith('restrict,port-forwarding,permitopen="127.0.0.1:40000",permitopen="127.0.0.1:40001",permitopen="127.0.0.1:40005" ')
    assert first.split()[1:3] == ED25519.split()[:2] and first.endswith(" dockpool:a-1,a-2")
    assert lines[1].startswith('restrict,port-forwarding,permitopen="127.0.0.1:40002" ssh-rsa ')


def test_ipv6_destinations_are_bracketed():
    assert 'permitopen="[::1]:40000"' in jump_key_lines([record("a", ED25519, [("SSH", 22, 40000)])], "::1")[0]


def test_tampered_key_label_never_reaches_sshd():
    bad = record("a", ED25519, [("SSH", 22, 40000)])
    bad.labels[L.PUBLIC_KEY] = 'command="sh" ' + ED25519
    assert jump_key_lines([bad], "127.0.0.1") == []


@pytest.mark.parametrize(
    "entry, over",
    [
        ({"disk_limit": 100, "size_rw": 101, "size_deleted_open": 0, "state": "running"}, True),
        ({"disk_limit": 100, "size_rw": 100, "size_deleted_open": 0, "state": "running"}, False),
        ({"disk_limit": 100, "size_rw": 60, "size_deleted_open": 60, "state": "running"}, True),  # hidden but held
        ({"disk_limit": None, "size_rw": 10**12, "size_deleted_open": 0, "state": "running"}, False),
        ({"disk_limit": 100, "size_rw": 500, "size_deleted_open": 0, "state": "exited"}, False),  # already stopped
    ],
)
def test_over_limit(entry, over):
    assert (over_limit([entry]) == [entry]) is over


def test_write_json_replaces_whole(tmp_path):
    path = tmp_path / "sub" / "usage.json"
    write_json(str(path), {"a": 1})
    write_json(str(path), {"a": 2}, mode=0o600)
    assert read_json(str(path)) == {"a": 2}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["usage.json"]


def test_a_writer_killed_mid_write_never_leaves_a_corrupt_file(tmp_path):
    """Kill a process in a loop of big atomic writes; the file stays a complete report."""
    path = tmp_path / "usage.json"
    write_json(str(path), {"instances": {}, "n": -1})
    script = (
        "import sys\nfrom dockpool.atomicfile import write_json\n"
        "big = {'instances': {f'i{k}': {'size_rw': k} for k in range(20000)}}\n"
        "for n in range(100000):\n    big['n'] = n\n    write_json(sys.argv[1], big)\n"
    )
    for delay in (0.3, 0.45, 0.6):
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)])
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = json.loads(path.read_text())  # never truncated
        assert "instances" in data and isinstance(data["n"], int)


def test_unreadable_usage_file_is_ignored_not_fatal(tmp_path, caplog):
    path = tmp_path / "usage.json"
    assert read_usage(str(path)) is None
    path.write_text('{"instances": [')
    assert read_usage(str(path)) is None
    assert "unreadable" in caplog.text
    path.write_text('["not a report"]')
    assert read_usage(str(path)) is None
    write_json(str(path), {"updated": "x", "instances": {}})
    assert read_usage(str(path)) == {"updated": "x", "instances": {}}


@pytest.mark.parametrize(
    "entry, field",
    [
        ({"IPV4": "10.0.0.1", "IPV6": {}, "ServerPort": "1"}, "IPV6"),
        ({"IPV4": "10.0.0.1", "ServerPort": "1", "ProxyServer": 0}, "ProxyServer"),
        ({"IPV4": "10.0.0.1", "ServerPort": "1", "NAT": 1}, "NAT"),
        ({"IPV4": "", "IPV6": "", "ServerPort": "1"}, "IPV4"),
        ({"IPV4": "::1", "ServerPort": "1"}, "IPV4"),
        ({"IPV4": "10.0.0.1", "ServerPort": True}, "ServerPort"),
        ({"IPV4": "10.0.0.1", "ServerPort": "1", "Latency": True}, "Latency"),
        ({"IPV4": "10.0.0.1", "ServerPort": "1", "Name": "a\nb"}, "Name"),
    ],
)
def test_peer_entries_are_checked_by_type_not_truthiness(entry, field):
    from dockpool.errors import InvalidInput
    from dockpool.peers import validate_entry

    with pytest.raises(InvalidInput) as info:
        validate_entry(entry)
    assert info.value.field == f"ip_address[0].{field}"

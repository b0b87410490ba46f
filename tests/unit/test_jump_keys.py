"""The jump account's key list: each client's key forwards to its own instances only."""


from dockpool.jumpaccess import jump_key_lines
from dockpool.labels import MANAGED_BY, PUBLIC_KEY, PublishedPort, Record, instance_labels
from dockpool.policy import Policy
from dockpool.spec import build_spec
from support.keys import ED25519, RSA_3072


def record(name, key, ports, managed=True):
    spec = build_spec({"name": name, "public_key": key}, Policy(), 8 * 1024**3, 4)
    labels = instance_labels(spec, [PublishedPort(*p) for p in ports], "0")
    if not managed:
        labels.pop(MANAGED_BY)
    return Record(name, name, labels, "running", "")


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
    bad.labels[PUBLIC_KEY] = 'command="sh" ' + ED25519
    assert jump_key_lines([bad], "127.0.0.1") == []



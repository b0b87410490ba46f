"""The create request is declared once (spec.py): every adapter states the same fields, and
`memory` means the instance's hard limit wherever it is given."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from dockpool.client_requests import client_request
from dockpool.errors import InvalidInput
from dockpool.labels import SPEC_LABELS, instance_labels
from dockpool.limits import Limits
from dockpool.request_options import cli_flags, json_schema, module_documentation
from dockpool.spec import CLIENT_FIELDS, REQUEST_FIELDS
from dockpool_api.app import make_app
from dockpool_api.config import config_from_dict
from dockpool_api.openapi import openapi_document
from dockpool_cli.instances import FILLED_BY_CLI, create_request
from dockpool_cli.main import parser
from dockpool_dev import module_docs
from support.api_config import make_config
from support.keys import ED25519
from support.paths import ROOT, VENV_BIN
from support.specs import make_spec

MIB, GIB = 1024**2, 1024**3
FIELDS = [f.name for f in REQUEST_FIELDS]
LIMITS = Limits(default_memory=256 * MIB, max_memory=GIB, max_cpus=None)


def _ansible(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_LOCALHOST_WARNING": "false"}
    return subprocess.run(list(argv), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_modules_documentation_is_rendered_from_the_declaration():
    """ansible-doc reads what spec.py declares (run python -m dockpool_dev.module_docs after a change)."""
    source = module_docs.MODULE.read_text(encoding="utf-8")
    assert module_docs.rendered(source) == source, "run: python -m dockpool_dev.module_docs"
    doc = json.loads(_ansible(str(VENV_BIN / "ansible-doc"), "--json", "-M", "library", "dockpool_container").stdout)
    options = doc["dockpool_container"]["doc"]["options"]
    for name, declared in module_documentation().items():
        stated = {key: options[name][key] for key in declared if key in options[name]}
        assert stated == declared, name


def test_the_modules_parameters_are_the_declarations():
    """The real module, asked with a parameter it does not know, lists the ones it takes."""
    run = _ansible(str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-m", "dockpool_container", "-a", "name=x colour=red")
    supported = re.search(r"Supported parameters include: ([a-z_, ]+)\.", run.stdout)
    assert supported, run.stdout
    taken = {p.strip() for p in supported.group(1).split(",")}
    assert set(FIELDS) <= taken
    assert taken - set(FIELDS) == {"state", "recreate", "wait", "wait_timeout", "policy_file", "provider", "docker_host"}


def test_the_api_schema_and_validation_take_the_clients_fields(tmp_path):
    document = openapi_document("test", make_app(config_from_dict(make_config(tmp_path))).routes)
    for path, method in (("/v1/instances", "post"), ("/v1/moves", "post")):
        schema = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert schema == json_schema() and list(schema["properties"]) == list(CLIENT_FIELDS)
    assert set(CLIENT_FIELDS) == {"name", "image", "public_key", "extra_ports", "gpu", "cpus", "memory",
                                  "memory_reservation", "disk_limit", "replica"}
    with pytest.raises(InvalidInput) as refused:
        client_request({"public_key": ED25519, "owner": "bob"})  # the operator's field, not a client's
    assert refused.value.field == "owner" and ", ".join(CLIENT_FIELDS) in refused.value.message


def test_every_asked_field_is_a_label():
    assert set(SPEC_LABELS) == set(FIELDS) - {"name"}
    labels = instance_labels(make_spec(public_key=ED25519), [], None)
    assert set(SPEC_LABELS.values()) <= set(labels)


def test_the_clis_flags_are_the_clients_fields(tmp_path: Path):
    """`up`'s flags reach the create request unchanged, and the core reads them as the module's."""
    flags = {flag for flag, _ in cli_flags(FILLED_BY_CLI)}
    assert flags == {"--" + name.replace("_", "-") for name in CLIENT_FIELDS if name not in FILLED_BY_CLI}
    key = tmp_path / "id"
    key.with_name("id.pub").write_text(ED25519 + "\n")
    args = parser().parse_args(["up", "--memory", "512m", "--memory-reservation", "300m", "--extra-ports", "2",
                                "--cpus", "1", "--disk-limit", "1g", "--gpu", "--name", "box"])
    body = create_request(args, key)
    assert body == {"public_key": ED25519, "memory": "512m", "memory_reservation": "300m", "extra_ports": 2,
                    "cpus": 1, "disk_limit": "1g", "gpu": True, "name": "box"}
    made = make_spec(LIMITS, **client_request(body))
    assert (made.memory, made.memory_reservation, made.extra_ports, made.cpus) == (512 * MIB, 300 * MIB, 2, 1)


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, (GIB, 256 * MIB)),  # the provider's cap, the provider's default reservation
        ({"memory": "512m"}, (512 * MIB, 256 * MIB)),  # memory is the hard limit
        ({"memory": "128m"}, (128 * MIB, 128 * MIB)),  # the default reservation never above it
        ({"memory_reservation": "768m"}, (GIB, 768 * MIB)),
        ({"memory": "512m", "memory_reservation": "512m"}, (512 * MIB, 512 * MIB)),
    ],
)
def test_memory_is_the_hard_limit_and_the_reservation_is_kept(params, expected):
    made = make_spec(LIMITS, **params)
    assert (made.memory, made.memory_reservation) == expected


@pytest.mark.parametrize(
    "params, field, words",
    [
        ({"memory": "2g"}, "memory", "memory: 2g is more than this provider allows (1g)"),
        ({"memory": "1m"}, "memory", "memory: at least 6m"),
        ({"memory": "512m", "memory_reservation": "768m"}, "memory_reservation",
         "memory_reservation: 768m is more than the instance's memory limit (512m)"),
        ({"disk_limit": "80g"}, "disk_limit", "disk_limit: 80g is more than this provider allows (50g)"),
        ({"extra_ports": 9}, "extra_ports", "extra_ports: 9 is outside 0-8"),
    ],
)
def test_one_wording_for_each_refusal(params, field, words):
    with pytest.raises(InvalidInput) as refused:
        make_spec(LIMITS, **params)
    assert refused.value.field == field and refused.value.message.startswith(words), refused.value.message


def test_a_clients_limits_only_narrow_the_providers():
    provider = Limits(max_memory=4 * GIB, default_memory=GIB, max_cpus=2)
    narrow = provider.narrowed(Limits.parse({"max_memory": "512m", "instances_per_client": 1}))
    assert (narrow.max_memory, narrow.default_memory, narrow.instances_per_client) == (512 * MIB, 512 * MIB, 1)
    assert narrow.max_cpus == 2  # what the client's limits do not name stays the provider's
    with pytest.raises(InvalidInput) as wider:
        provider.narrowed(Limits.parse({"max_cpus": 8}), "lab's limits")
    assert wider.value.field == "lab's limits.max_cpus" and "only narrow" in wider.value.message
    assert make_spec(narrow).memory == 512 * MIB
    assert Limits(max_memory=None).memory_ceiling(16 * GIB) == 16 * GIB
    assert Limits(max_memory=32 * GIB).memory_ceiling(16 * GIB) == 16 * GIB  # never above the host's RAM


def test_a_request_of_nothing_gets_the_providers_defaults():
    s = make_spec()
    assert (s.image, s.owner, s.ssh_user, s.extra_ports, s.gpu) == ("debian-sshd", "operator", "root", 0, False)
    # The IaaS rule: the hard limit is the provider's cap, the reservation its default.
    assert (s.cpus, s.cpu_share, s.memory, s.memory_reservation, s.disk_limit, s.pids_limit) == (
        None, 1.0, 4 * GIB, GIB, 10 * GIB, 512)
    assert s.public_key is None


def test_a_full_request():
    s = make_spec(public_key=ED25519, cpus=2, memory="2g", memory_reservation="1g", disk_limit="10g", extra_ports=3, owner="alice", gpu=True)
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
        make_spec(**params)
    assert info.value.field == field, info.value.message



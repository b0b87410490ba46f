"""The provider's settings file (provider.json): its parser, its public address, its refusals."""
import pytest

from dockpool.errors import InvalidInput
from dockpool.policy import PortRange, load_policy, policy_from_settings

GIB = 1024**3
def test_policy_from_settings_and_file(tmp_path):
    path = tmp_path / "provider.json"
    path.write_text('{"port_range": "41000-41999", "limits": {"max_memory": "8g", "max_cpus": 1}, "bind_address": "127.0.0.1"}')
    policy = load_policy(str(path), {"limits": {"max_memory": "2g"}, "public_address": None})
    assert policy.port_range == PortRange(41000, 41999) and policy.limits.max_memory == 2 * GIB
    assert policy.limits.max_cpus == 1  # the file's other limits stay
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
     ({"limits": {"pids_limit": 2}}, "limits.pids_limit"), ({"limits": {"max_memory": "lots"}}, "limits.max_memory"),
     ({"max_memory": "4g"}, "max_memory"),  # a limit is one of `limits`, never a setting of its own
     ({"limits": {"default_memory": "2g", "max_memory": "1g"}}, "default_memory"),
     ({"limits": {"max_ram": "1g"}}, "limits.max_ram"),
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

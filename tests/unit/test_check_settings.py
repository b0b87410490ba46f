"""dockpool-check-settings: the roles' validate command accepts what the service reads and names what it refuses."""
import json

import pytest

from dockpool_api.check_settings import main


@pytest.mark.parametrize("kind, settings", [
    ("policy", {"port_range": "40000-40999", "bind_address": "127.0.0.1"}),
    ("api", {"listen": "127.0.0.1", "port": 8088, "provider_name": "p1"}),
])
def test_settings_the_service_reads_pass(tmp_path, kind, settings):
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(settings))
    assert main([kind, str(path)]) == 0


@pytest.mark.parametrize("kind, text, field", [
    ("policy", '{"port_range": "bad"}', "port_range"),
    ("policy", "[1, 2]", "policy_file"),
    ("api", '{"provider_name": "no spaces allowed"}', "provider_name"),
    ("api", "{not json", "config"),
])
def test_a_refused_file_fails_naming_the_file_and_field(tmp_path, capsys, kind, text, field):
    path = tmp_path / f"{kind}.json"
    path.write_text(text)
    assert main([kind, str(path)]) == 1
    message = capsys.readouterr().err
    assert str(path) in message and f"(field {field})" in message


def test_an_unknown_kind_is_refused_with_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sshd", str(tmp_path / "x.json")])
    assert exit_.value.code == 2 and "policy" in capsys.readouterr().err

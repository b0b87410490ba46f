"""The CLI's own files and codes: SSH entries, settings, exit codes."""
from __future__ import annotations

import stat

import pytest

from dockpool_cli import sshconfig
from dockpool_cli.errors import AUTH, NOT_FOUND, REFUSED, UNAVAILABLE, code_for_status
from dockpool_cli.settings import Settings

SSH = {"user": "root", "port": 40001, "target_host": "127.0.0.1", "jump": {"user": "iaas-client", "host": "p1.example", "port": 22000}}


def test_exit_codes_for_statuses():
    assert [code_for_status(s) for s in (401, 403, 404, 400, 409, 413, 500, 503)] == [
        AUTH, AUTH, NOT_FOUND, REFUSED, REFUSED, REFUSED, UNAVAILABLE, UNAVAILABLE]


def test_ssh_entries_are_added_replaced_and_removed(tmp_path):
    key = tmp_path / "id_ed25519"
    path = sshconfig.add(tmp_path, "alice-p1-1", SSH, key)
    sshconfig.add(tmp_path, "alice-p1-2", {**SSH, "port": 40005}, key)
    sshconfig.add(tmp_path, "alice-p1-1", {**SSH, "port": 40009}, key)  # replaced, not doubled
    text = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert text.count("Host alice-p1-1\n") == 1 and "Port 40009" in text and "Port 40001" not in text
    assert "Host alice-p1-1.jump\n    HostName p1.example\n    Port 22000\n    User iaas-client\n" in text
    assert "    ProxyJump alice-p1-1.jump\n    HostKeyAlias alice-p1-1\n" in text
    assert sshconfig.names(tmp_path) == ["alice-p1-2", "alice-p1-1"]
    assert sshconfig.remove(tmp_path, "alice-p1-1") is True
    assert sshconfig.names(tmp_path) == ["alice-p1-2"] and "alice-p1-1" not in path.read_text()
    assert sshconfig.remove(tmp_path, "alice-p1-1") is False


@pytest.mark.parametrize("field,value", [("user", "root\n    ProxyCommand touch /tmp/x"), ("target_host", "a b"), ("user", "root\n")])
def test_ssh_entries_refuse_values_that_could_add_directives(tmp_path, field, value):
    with pytest.raises(ValueError):
        sshconfig.add(tmp_path, "alice-p1-1", {**SSH, field: value}, tmp_path / "k")
    assert not sshconfig.ssh_config_path(tmp_path).exists()


def test_settings_are_private_and_survive_a_round_trip(tmp_path):
    settings = Settings.load(tmp_path / "cfg")
    settings.providers["http://p1:8088"] = {"token": "t"}
    settings.default = "http://p1:8088"
    settings.save()
    assert stat.S_IMODE((tmp_path / "cfg" / "config.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "cfg").stat().st_mode) == 0o700
    again = Settings.load(tmp_path / "cfg")
    assert again.token("http://p1:8088") == "t" and again.provider(None) == "http://p1:8088"

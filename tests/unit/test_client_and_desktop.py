"""Pure pieces of the client CLI and of desktop instances."""
from __future__ import annotations

import stat

import pytest

from dockpool.desktop import VNC_PASSWORD_LENGTH, desktop_password, desktop_view
from dockpool.images import base_reference
from dockpool.labels import PublishedPort
from dockpool.units import human_size
from dockpool_cli import sshconfig
from dockpool_cli.errors import AUTH, NOT_FOUND, REFUSED, UNAVAILABLE, code_for_status
from dockpool_cli.settings import Settings

SSH = {"user": "root", "port": 40001, "target_host": "127.0.0.1", "jump": {"user": "iaas-client", "host": "p1.example", "port": 22000}}


def test_base_reference_follows_arg_defaults_and_build_arguments():
    text = "# c\nARG SSHD_IMAGE=dockpool/debian-sshd:latest\nFROM ${SSHD_IMAGE}\nARG LATER=x\nFROM other\n"
    assert base_reference(text) == "dockpool/debian-sshd:latest"
    assert base_reference(text, {"SSHD_IMAGE": "mine/sshd:1"}) == "mine/sshd:1"
    assert base_reference("ARG BASE_IMAGE\nFROM --platform=linux/amd64 $BASE_IMAGE AS build\n", {"BASE_IMAGE": "b:1"}) == "b:1"
    assert base_reference("FROM scratch\n") == "scratch"
    assert base_reference("RUN true\n") is None


def test_desktop_password_and_view():
    passwords = {desktop_password() for _ in range(50)}
    assert len(passwords) == 50 and all(len(p) == VNC_PASSWORD_LENGTH and p.isalnum() for p in passwords)
    ports = [PublishedPort("SSH", 22, 40000), PublishedPort("VNC", 5901, 40001), PublishedPort("noVNC", 6901, 40002)]
    assert desktop_view(ports, "p1.example") == {"novnc_url": "http://p1.example:40002/vnc.html?autoconnect=true&resize=scale",
                                                 "vnc_address": "p1.example:40001"}
    assert desktop_view(ports, "2001:db8::1")["novnc_url"].startswith("http://[2001:db8::1]:40002/")
    assert desktop_view(ports[:1], "p1.example") is None


def test_human_size():
    assert [human_size(n) for n in (None, 512, 1536, 25275305984, 5 * 1024**4)] == ["-", "512 B", "1.5 KiB", "23.5 GiB", "5.0 TiB"]


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

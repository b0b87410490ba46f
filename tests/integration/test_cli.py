"""The `dockpool` console script (installed by pip into the virtual environment)
against the real API process on loopback and the real engine. The SSH path
through a provider's jump account on 22000 is proven end to end in tests/e2e."""
from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from support.api_config import TOKENS, make_config
from support.api_process import api_process
from support.cli import DOCKPOOL, cli
from support.ssh import ssh_run

pytestmark = pytest.mark.engine




@pytest.fixture
def service(tmp_path, engine):
    with api_process(tmp_path, make_config(tmp_path)) as url:
        yield url
    for c in engine.containers.list(all=True, filters={"label": "dockpool.owner"}):
        if c.labels.get("dockpool.owner") in TOKENS:
            c.remove(force=True)


def test_the_console_script_is_installed_by_pip():
    assert Path(DOCKPOOL).is_file(), "scripts/setup.sh installs the client with `pip install -e .`"
    shown = subprocess.run([DOCKPOOL, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0 and "speedtest" in shown.stdout


def test_login_keeps_a_checked_token_in_a_private_file(service, tmp_path):
    refused = cli(tmp_path, "login", service, "--token", "not-a-token")
    assert refused.returncode == 3 and "401" in refused.stderr
    assert not (tmp_path / "dockpool" / "config.json").exists()
    nowhere = cli(tmp_path, "login", "http://127.0.0.1:9", "--token", "x")
    assert nowhere.returncode == 6 and "cannot be reached" in nowhere.stderr
    done = cli(tmp_path, "login", service, token=TOKENS["alice"])  # from $DOCKPOOL_TOKEN
    assert done.returncode == 0, done.stderr
    config = tmp_path / "dockpool" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["providers"][service]["token"] == TOKENS["alice"]


def test_up_ls_stop_start_rm_with_ssh_entries(service, tmp_path, keypair, engine):
    assert cli(tmp_path, "ls").returncode == 3  # not logged in yet
    assert cli(tmp_path, "login", service, "--token", TOKENS["alice"]).returncode == 0
    made = cli(tmp_path, "up", "--key", str(keypair[0]), "--memory", "128m", "--no-check", "--json")
    assert made.returncode == 0, made.stderr
    view = json.loads(made.stdout)
    name = view["name"]
    assert name == "alice-testprov-1" and view["state"] == "running"
    # The provider's answer came once sshd answered: the instance takes the key now.
    assert ssh_run(keypair[0], view["ssh"]["port"], "hostname").stdout.strip() == name
    config = Path(view["ssh_config"]).read_text()
    assert f"Host {name}.jump\n    HostName 127.0.0.1\n    Port 22000\n    User iaas-client\n" in config
    assert f"Host {name}\n    HostName 127.0.0.1\n    Port {view['ssh']['port']}\n    User root\n    ProxyJump {name}.jump\n" in config
    assert f"IdentityFile {keypair[0]}" in config
    assert stat.S_IMODE(Path(view["ssh_config"]).stat().st_mode) == 0o600

    listed = cli(tmp_path, "ls", "--json")
    assert listed.returncode == 0 and [v["name"] for v in json.loads(listed.stdout)] == [name]
    table = cli(tmp_path, "ls")
    assert name in table.stdout and "running" in table.stdout

    assert cli(tmp_path, "stop", name).returncode == 0
    assert engine.containers.get(view["id"]).status == "exited"
    assert cli(tmp_path, "start", name).returncode == 0
    assert engine.containers.get(view["id"]).status == "running"

    removed = cli(tmp_path, "rm", name)
    assert removed.returncode == 0, removed.stderr
    assert not engine.containers.list(all=True, filters={"id": view["id"]})
    assert name not in Path(view["ssh_config"]).read_text()
    assert cli(tmp_path, "ssh", name).returncode == 4  # no entry any more
    gone = cli(tmp_path, "stop", name)
    assert gone.returncode == 4 and "does not exist" in gone.stderr


def test_api_errors_become_messages_and_exit_codes(service, tmp_path, keypair):
    assert cli(tmp_path, "login", service, "--token", TOKENS["bob"]).returncode == 0
    too_big = cli(tmp_path, "up", "--key", str(keypair[0]), "--memory", "64g", "--no-check")
    assert too_big.returncode == 5 and "memory: 64g is more than this provider allows" in too_big.stderr
    unknown = cli(tmp_path, "up", "--key", str(keypair[0]), "--image", "nosuchimage", "--no-check")
    assert unknown.returncode == 5 and "not offered" in unknown.stderr
    nonsense = cli(tmp_path, "up", "--key", str(keypair[0]), "--memory", "lots")
    assert nonsense.returncode == 5 and "not a size" in nonsense.stderr
    assert cli(tmp_path, "up", "--cpus", "two").returncode == 2  # argparse
    assert cli(tmp_path, "ls", "--json").stdout.strip() == "[]"  # nothing was left behind


def test_speedtest_moves_the_bytes_it_reports(service, tmp_path):
    assert cli(tmp_path, "login", service, "--token", TOKENS["alice"]).returncode == 0
    done = cli(tmp_path, "speedtest", "--bytes", str(512 * 1024), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["download_bytes"] == result["upload_bytes"] == 512 * 1024
    assert result["download_mbit_s"] > 0 and result["upload_mbit_s"] > 0
    too_much = cli(tmp_path, "speedtest", "--bytes", str(4 * 2**20))  # this service allows 1 MiB uploads
    assert too_much.returncode == 5 and "413" in too_much.stderr


def test_providers_lists_the_peer_table_with_measured_latency(service, tmp_path):
    assert cli(tmp_path, "login", service, "--token", TOKENS["alice"]).returncode == 0
    shown = cli(tmp_path, "providers", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert rows[0]["url"] == service and rows[0]["reachable"] and rows[0]["latency_ms"] > 0
    assert rows[0]["name"] == "testprov" and rows[0]["cores"] >= 1 and rows[0]["logged_in"]
    assert requests.get(f"{service}/healthz", timeout=10).status_code == 200

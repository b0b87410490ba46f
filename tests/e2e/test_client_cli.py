"""The client's whole path against a provider made by provision.yml: `dockpool login`,
`up` (which logs in through the jump account on 22000 itself), a real `ssh` with the
written config and `ProxyJump`, then `rm`. Run by the molecule provision scenario."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_provider import API, CACHE, CLIENT_KEY, default_ipv4, on_provider
from test_tls import TLS_API, provider_fingerprint

if not API:
    pytest.skip("run by the molecule provision scenario (tests/e2e/molecule/provision)", allow_module_level=True)
DOCKPOOL = shutil.which("dockpool", path=str(Path(sys.executable).parent)) or "dockpool"


def cli(home: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKPOOL_CONFIG_DIR": str(home / "dockpool"), "HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([DOCKPOOL, *argv], capture_output=True, text=True, env=env, timeout=300,
                          stdin=subprocess.DEVNULL, check=False)


def test_up_then_ssh_through_proxyjump_on_22000_then_rm(tmp_path):
    token = (CACHE / "e2e.token").read_text().strip()
    # Over HTTPS, pinning the self-signed certificate as the operator would hand it out.
    logged_in = cli(tmp_path, "login", TLS_API, "--token", token, "--fingerprint", provider_fingerprint())
    assert logged_in.returncode == 0, logged_in.stderr
    made = cli(tmp_path, "up", "--key", str(CLIENT_KEY), "--memory-reservation", "128m", "--name", "cli", "--json")
    assert made.returncode == 0, made.stderr
    view = json.loads(made.stdout)
    assert view["ssh_checked"] is True  # `up` itself logged in through the jump host
    name, config = view["name"], Path(view["ssh_config"])
    # The jump host is the address the API handed out: the role's default public address.
    assert f"Host {name}.jump\n    HostName {default_ipv4()}\n    Port 22000\n    User iaas-client\n" in config.read_text()

    # A real ssh client, with nothing but the written config: ProxyJump through the jump account on 22000.
    plain = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", name, "hostname"], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert plain.returncode == 0 and plain.stdout.strip() == name, plain.stderr
    through_cli = cli(tmp_path, "ssh", name, "--", "cat", "/etc/hostname")
    assert through_cli.returncode == 0 and through_cli.stdout.strip() == name, through_cli.stderr

    listed = json.loads(cli(tmp_path, "ls", "--json").stdout)
    assert [v["name"] for v in listed] == [name]
    kept = tmp_path / "ssh_config_before_rm"
    kept.write_text(config.read_text())
    removed = cli(tmp_path, "rm", name)
    assert removed.returncode == 0, removed.stderr
    assert name not in config.read_text()
    assert on_provider("docker", "ps", "-aq", "--filter", f"name=^{name}$").stdout.strip() == ""
    # Its access went with it: with the old entry, the jump account now refuses the key.
    after = subprocess.run(["ssh", "-F", str(kept), "-o", "BatchMode=yes", name, "true"], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert after.returncode == 255 and ("Permission denied" in after.stderr or "prohibited" in after.stderr), after.stderr

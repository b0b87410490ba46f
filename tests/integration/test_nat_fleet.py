"""A provider behind NAT as the fleet and its clients see it (issue 33; docs/nat.md): the
relays in its settings are signed into its fleet entry, `dockpool providers` marks it
relayed, and the SSH path it hands a client jumps through its first relay. The real API
process and the real CLI; the NAT itself is tested in test_nat.py."""
from __future__ import annotations

import json

import pytest
import requests

from support.api_config import TOKENS, make_config
from support.api_process import api_process
from support.cli import cli

BASE = 41000

@pytest.mark.engine
def test_dockpool_providers_shows_a_relayed_provider_and_its_jump_host_is_the_relay(tmp_path, engine, keypair):
    """A provider whose settings name relays (what the provider_api role writes from tunnel_relays):
    its signed entry carries them, `dockpool providers` marks it relayed, and the SSH path it
    hands a client jumps through the first relay's port, not its own address."""
    paths = [{"address": "198.51.100.7", "api_port": BASE, "ssh_port": BASE + 1, "fleet_port": BASE + 2}]
    with api_process(tmp_path, make_config(tmp_path, relays=paths)) as url:
        assert cli(tmp_path, "login", url, "--token", TOKENS["alice"]).returncode == 0
        shown = cli(tmp_path, "providers", "--json")
        assert shown.returncode == 0, shown.stderr
        rows = json.loads(shown.stdout)
        assert rows[0]["url"] == url and rows[0]["relayed"] is True
        table = cli(tmp_path, "providers")
        assert "(relayed)" in table.stdout
        own = requests.get(f"{url}/v1/peers", timeout=10).json()["ip_address"][0]
        assert own["dockpool"]["relays"] == paths
        made = requests.post(f"{url}/v1/instances", json={"public_key": keypair[1], "memory": "64m"},
                             headers={"Authorization": f"Bearer {TOKENS['alice']}"}, timeout=60)
        assert made.status_code in (200, 201), made.text
        jump = made.json()["ssh"]["jump"]
        assert (jump["host"], jump["port"]) == ("198.51.100.7", BASE + 1)
        assert f"@198.51.100.7:{BASE + 1} " in made.json()["ssh"]["jump_command"]
    for c in engine.containers.list(all=True, filters={"label": "dockpool.owner"}):
        if c.labels.get("dockpool.owner") in TOKENS:
            c.remove(force=True)

"""A provider's owner takes the machine back (issue 24, its first part): while the provider is
draining it takes no new instance, created or moved in, says where to go instead, and the
fleet and the CLI show it. Real API processes, the real engine and the real CLI."""
from __future__ import annotations

import json
import time

import pytest
import requests
from webtest import TestApp

from dockpool.errors import InvalidInput
from dockpool_api.app import make_app
from dockpool_api.config import config_from_dict
from support.api_config import TOKENS, make_config
from support.api_process import api_process
from support.cli import cli
from support.two_providers import SOURCE, TARGET, two_providers

pytestmark = pytest.mark.engine


def auth(who: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


def test_a_draining_provider_refuses_new_instances_says_why_and_keeps_the_state_across_restarts(tmp_path, keypair,
                                                                                                   cleanup):
    settings = make_config(tmp_path)
    with api_process(tmp_path, settings) as url:
        assert requests.get(f"{url}/v1/drain", timeout=10).json() == {"draining": False, "since": None}
        by_client = requests.put(f"{url}/v1/drain", json={"draining": True}, headers=auth("alice"), timeout=10)
        assert by_client.status_code in (401, 403, 404) and not requests.get(f"{url}/v1/drain", timeout=10).json()["draining"]
        wrong = requests.put(f"{url}/v1/drain", json={"draining": "yes"}, headers=auth("ops"), timeout=10)
        assert wrong.status_code == 400 and wrong.json()["field"] == "draining"
        started = requests.put(f"{url}/v1/drain", json={"draining": True}, headers=auth("ops"), timeout=10).json()
        assert started["draining"] is True and started["since"]
        refused = requests.post(f"{url}/v1/instances", json={"public_key": keypair[1]}, headers=auth("alice"), timeout=30)
        assert refused.status_code == 409, refused.text
        assert "draining" in refused.json()["error"] and refused.json()["detail"]["draining"] is True
        assert requests.get(f"{url}/healthz", timeout=10).json()["draining"] is True
    with api_process(tmp_path, settings) as url:  # restarted: still draining, since the same time
        assert requests.get(f"{url}/v1/drain", timeout=10).json() == started
        assert requests.post(f"{url}/v1/instances", json={"public_key": keypair[1]}, headers=auth("alice"),
                             timeout=30).status_code == 409
        ended = requests.put(f"{url}/v1/drain", json={"draining": False}, headers=auth("ops"), timeout=10).json()
        assert ended == {"draining": False, "since": None}
        made = requests.post(f"{url}/v1/instances", json={"public_key": keypair[1]}, headers=auth("alice"), timeout=120)
        assert made.status_code == 201, made.text


def test_an_unreadable_drain_state_stops_the_start_naming_the_file(tmp_path):
    settings = make_config(tmp_path)
    (tmp_path / "drain.json").write_text("{not json")
    with pytest.raises(InvalidInput) as refused:
        TestApp(make_app(config_from_dict(settings)))
    assert refused.value.field == "drain_file" and str(tmp_path / "drain.json") in refused.value.message


def test_the_fleet_and_the_cli_see_the_drain_and_nothing_moves_in(tmp_path, keypair, engine, cleanup):
    with two_providers(tmp_path) as (source, target, engine2):
        drained = requests.put(f"{TARGET}/v1/drain", json={"draining": True}, headers=auth("ops"), timeout=10)
        assert drained.status_code == 200, drained.text
        deadline = time.monotonic() + 20
        while not [m for m in requests.get(f"{SOURCE}/v1/fleet", timeout=10).json()["members"]
                   if m["name"] == "target" and m["draining"]]:
            assert time.monotonic() < deadline, "the source never heard of the target's drain"
            time.sleep(0.3)
        # A move into it is refused by the target, before anything stops on the source.
        offer = requests.post(f"{TARGET}/v1/moves", headers=auth("alice"), timeout=30,
                              json={"public_key": keypair[1], "source": "source"})
        assert offer.status_code == 409 and "draining" in offer.json()["error"], offer.text
        # Creating there names the provider that takes instances.
        refused = requests.post(f"{TARGET}/v1/instances", json={"public_key": keypair[1]}, headers=auth("alice"), timeout=30)
        assert refused.status_code == 409 and "source (127.0.0.1:8091)" in refused.json()["error"], refused.text
        home = tmp_path / "client"
        for url in (SOURCE, TARGET):
            assert cli(home, "login", url, "--token", TOKENS["alice"]).returncode == 0
        listed = cli(home, "providers", "--json")
        assert listed.returncode == 0, listed.stderr
        assert {row["name"]: row["draining"] for row in json.loads(listed.stdout)} == {"source": False, "target": True}
        assert "target (draining)" in cli(home, "providers").stdout
        best = cli(home, "up", "--best", "--key", str(keypair[0]), "--no-check", "--json")
        assert best.returncode == 0, best.stderr
        assert json.loads(best.stdout)["name"].startswith("alice-source-")  # never the draining one

"""The API service as a real process over real HTTP on loopback, with the real engine."""
from __future__ import annotations

import time

import pytest
import requests

from dockpool_dev import devca
from support.api_config import TOKENS, make_config
from support.api_process import api_process
from support.ssh import ssh_run

pytestmark = pytest.mark.engine


@pytest.fixture
def service(tmp_path):
    with api_process(tmp_path, make_config(tmp_path, max_upload_bytes=8 * 2**20)) as url:
        yield url


def test_instance_over_http_reached_by_ssh_then_removed(service, keypair, engine):
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    created = requests.post(f"{service}/v1/instances", json={"public_key": keypair[1]}, headers=headers, timeout=60)
    assert created.status_code == 201, created.text
    view = created.json()
    assert ssh_run(keypair[0], view["ssh"]["port"], "id -un").stdout.strip() == "root"
    assert requests.delete(f"{service}/v1/instances/{view['id']}", headers=headers, timeout=60).status_code == 200
    assert not engine.containers.list(all=True, filters={"id": view["id"]})


def test_downloads_stream_and_uploads_are_bounded(service):
    with requests.get(f"{service}/50", stream=True, timeout=60) as reply:
        assert reply.headers["Content-Length"] == str(50 * 2**20)
        assert sum(len(chunk) for chunk in reply.iter_content(1 << 20)) == 50 * 2**20

    def body(total: int, chunk: int = 65536):
        sent = 0
        while sent < total:
            yield b"\0" * chunk
            sent += chunk

    # A chunked body (no length announced) is counted as it arrives.
    counted = requests.post(f"{service}/v1/speedtest/upload", data=body(4 * 2**20), timeout=60).json()
    assert counted["bytes"] == 4 * 2**20 and counted["seconds"] > 0
    # A body announced too large is refused by the service, in JSON.
    declared = requests.post(f"{service}/v1/speedtest/upload", data=b"\0" * (8 * 2**20 + 1), timeout=60)
    assert declared.status_code == 413 and declared.json()["detail"] == {"max": 8 * 2**20}
    # An endless body is cut by the server at the bound (plus 1 MiB of slack), and the service keeps serving.
    endless = requests.post(f"{service}/v1/speedtest/upload", data=body(10**12), timeout=60)
    assert endless.status_code == 413
    assert requests.get(f"{service}/healthz", timeout=10).json()["engine"] is True


def test_two_providers_on_two_loopback_addresses_keep_each_other(tmp_path):
    # Members of one fleet: certificates of one CA, exchanges over mutual TLS on their fleet ports.
    ca = devca.make_ca(tmp_path / "ca")
    loopback = {"peer_networks": ["127.0.0.0/8"], "peer_deny_networks": []}
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    alpha_settings = {**make_config(first_dir), **loopback, "provider_name": "alpha",
                      **devca.fleet_settings(ca, first_dir, "alpha", "127.0.0.2", 8495)}
    with api_process(first_dir, alpha_settings, host="127.0.0.2") as alpha:
        beta_settings = {**make_config(second_dir), **loopback, "provider_name": "beta",
                         "bootstrap_peers": ["https://127.0.0.2:8495"],
                         **devca.fleet_settings(ca, second_dir, "beta", "127.0.0.3", 8495)}
        with api_process(second_dir, beta_settings, host="127.0.0.3") as beta:
            deadline = time.monotonic() + 30  # bounded: the announcement retries a few times
            names = lambda url: {p["Name"] for p in requests.get(f"{url}/v1/peers", timeout=5).json()["ip_address"]}  # noqa: E731
            while time.monotonic() < deadline and not (names(alpha) == names(beta) == {"alpha", "beta"}):
                time.sleep(0.2)
            assert names(alpha) == {"alpha", "beta"} and names(beta) == {"alpha", "beta"}
            kept = (first_dir / "peers.json").read_text()
            assert '"beta"' in kept and '"127.0.0.3"' in kept  # written to disk
            # A posted peer that does not answer is not kept.
            ghost = {"ip_address": [{"Name": "ghost", "IPV4": "127.0.0.4", "ServerPort": "8496"}]}  # nothing listens there
            alice = {"Authorization": f"Bearer {TOKENS['alice']}"}
            kept_names = {p["Name"] for p in requests.post(f"{alpha}/v1/peers", json=ghost, headers=alice, timeout=30).json()["ip_address"]}
            assert "ghost" not in kept_names

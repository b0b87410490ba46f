"""Two providers on separate engines, as moving an instance needs: real API processes, the
source on this machine's engine (127.0.0.1:8091), the target on a second engine
(127.0.0.3:8091) with its own port range, peers of each other; or three, with a "spare"
(127.0.0.4:8091) on the second engine too. For tests and benchmarks."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import requests

from dockpool.snapshots import MOVE_LABEL
from dockpool_dev import devca, second_engine
from dockpool_dev.api_config import make_config, update_policy
from dockpool_dev.api_process import wait_until_up

FLEET = {"peer_networks": ["127.0.0.0/8"], "peer_deny_networks": [], "gossip_interval": 0.5, "peer_expiry": 5.0}
SOURCE, TARGET, SPARE = "http://127.0.0.1:8091", "http://127.0.0.3:8091", "http://127.0.0.4:8091"
FLEET_PORT = 8491  # each provider's fleet listener (mutual TLS), on its own address


class Provider:
    def __init__(self, directory: Path, url: str, settings: dict) -> None:
        self.directory, self.url, self.settings = directory, url, settings
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        config = self.directory / "api.json"
        config.write_text(json.dumps(self.settings))
        log = open(self.directory / "api.log", "ab")  # closed when the process ends
        self.proc = subprocess.Popen([sys.executable, "-m", "dockpool_api", "--config", str(config)],
                                     stdout=log, stderr=subprocess.STDOUT)
        wait_until_up(self.url)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


MEMBERS = (("source", SOURCE, {}),
           ("target", TARGET, {"port_range": "46000-46019"}),
           ("spare", SPARE, {"port_range": "46100-46119"}))


@contextmanager
def two_providers(tmp_path: Path, target_limits: Optional[dict] = None,
                  target_ports: str = "46000-46019", limits: Optional[dict] = None,
                  api: Optional[dict] = None) -> Iterator[tuple]:
    """``limits`` go over both providers' test limits, ``target_limits`` over the target's then;
    ``api`` over both API settings."""
    with _fleet(tmp_path, 2, target_limits, target_ports, limits, api) as (made, engine2):
        yield made[0], made[1], engine2


@contextmanager
def three_providers(tmp_path: Path, api: Optional[dict] = None) -> Iterator[tuple]:
    """The two, and a third member "spare" (127.0.0.4) on the second engine too, for what needs
    a member to fall back on (a replica's next holder)."""
    with _fleet(tmp_path, 3, None, "46000-46019", None, api) as (made, engine2):
        yield made[0], made[1], made[2], engine2


@contextmanager
def _fleet(tmp_path: Path, size: int, target_limits: Optional[dict], target_ports: str, limits: Optional[dict],
           api: Optional[dict]) -> Iterator[tuple[list[Provider], Any]]:
    engine2 = second_engine.ensure()
    made = []
    ca = devca.make_ca(tmp_path / "fleet-ca")
    for name, url, policy in MEMBERS[:size]:
        extra = {} if name == "source" else {"docker_host": second_engine.HOST,
                                             "bootstrap_peers": [f"https://127.0.0.1:{FLEET_PORT}"]}
        folder = tmp_path / name
        folder.mkdir()
        address = url[7:].split(":")[0]
        settings = make_config(folder, **FLEET, **extra, **(api or {}), provider_name=name, listen=address, port=8091,
                               **devca.fleet_settings(ca, folder / "fleet", name, address, FLEET_PORT))
        target = name == "target"
        update_policy(folder / "provider.json", public_address=address,
                      limits={**(limits or {}), **((target_limits or {}) if target else {})},
                      **({**policy, "port_range": target_ports} if target else policy))
        made.append(Provider(folder, url, settings))
    try:
        for provider in made:
            provider.start()
        deadline = time.monotonic() + 30
        while not all(len(requests.get(f"{p.url}/v1/fleet", timeout=5).json()["members"]) == size - 1 for p in made):
            assert time.monotonic() < deadline, f"the {size} providers never found each other"
            time.sleep(0.3)
        yield made, engine2
    finally:
        for provider in made:
            provider.stop()
        for c in engine2.containers.list(all=True, filters={"label": "dockpool.owner"}):
            c.remove(force=True)
        for image in engine2.images.list(filters={"label": MOVE_LABEL}):
            engine2.images.remove(image.id, force=True)

"""The real API service as a separate process on a loopback address, as the systemd unit runs it."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import requests

from dockpool_dev.api_config import update_policy


def free_port(host: str = "0.0.0.0") -> int:
    """A port free on every IPv4 address by default: services and nginx fronts often listen on all of
    them, and a flood's or a move's connections from other loopback addresses may hold a port."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def api_process(directory: Path, settings: dict, host: str = "127.0.0.1",
                env: Optional[dict[str, str]] = None) -> Iterator[str]:
    """Run ``python -m dockpool_api`` with ``settings`` (and ``env`` over this process's environment);
    yields its base URL, stops it afterwards."""
    port = settings.get("port") or free_port(host)
    config = directory / f"api-{host}-{port}.json"
    config.write_text(json.dumps({"listen": host, "port": port, **settings}))
    if settings.get("policy_file"):  # reached where it listens, unless the test says otherwise
        update_policy(settings["policy_file"], defaults={"public_address": host})
    log = open(directory / f"api-{host}-{port}.log", "w")  # closed below
    proc = subprocess.Popen([sys.executable, "-m", "dockpool_api", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    url = f"http://{host}:{port}"
    try:
        try:
            wait_until_up(url)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; its log:\n{(directory / log.name).read_text()[-2000:]}") from None
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

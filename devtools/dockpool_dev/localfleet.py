"""A fleet on one machine, for development, tests and benchmarks.

    python -m dockpool_dev.localfleet start 5     # 5 API processes on 127.0.0.2 ... 127.0.0.6
    python -m dockpool_dev.localfleet stop        # SIGTERM to all of them (SIGKILL after 10 s)

Each provider is a real ``python -m dockpool_api`` process on its own loopback address
(port 8088), against this machine's Docker engine, with its own state folder and its
own port range for instances; provider i is bootstrapped with provider i-1 only (a chain),
so the fleet knows itself only through its exchanges. A CA made in the folder (devca.py)
gives each provider its fleet certificate; they talk over mutual TLS on port 8444 of their
addresses. ``fleet.json`` in the folder lists each provider's URL, process id and name, and
the one client token every provider of the fleet accepts. Loopback is allowed as a peer network here only; providers keep the default
that refuses it.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import requests

from dockpool_api.auth import hash_token
from dockpool_dev import devca

DEFAULT_DIR = Path(".cache/fleet")
PORT = 8088
FLEET_PORT = 8444


def address(index: int) -> str:
    """Provider ``index`` (from 0) listens on 127.0.0.(index+2): 127.0.0.1 stays the machine's."""
    if not 0 <= index < 250:
        raise ValueError("a local fleet has at most 250 providers (127.0.0.2 to 127.0.0.251)")
    return f"127.0.0.{index + 2}"


# Each provider's limits (its provider.json's) unless the caller gives others.
LIMITS = {"default_memory": "128m", "max_memory": "512m", "max_disk_limit": "2g", "default_disk_limit": "1g",
          "max_cpus": 1, "max_extra_ports": 2, "instances_per_client": 4}


def provider_settings(directory: Path, index: int, token: str, ca: tuple[Path, Path], gossip: dict[str, Any],
                      limits: Optional[dict[str, Any]] = None, port_range: Optional[str] = None) -> dict[str, Any]:
    """The settings of provider ``index``: what the provider_api role renders, on loopback."""
    state = directory / f"p{index}"
    state.mkdir(parents=True, exist_ok=True)
    policy = state / "provider.json"
    # 20 instance ports per provider, apart from the tests' (43000-43999) and the sandbox's.
    ports = port_range or f"{45000 + 20 * index}-{45000 + 20 * index + 19}"
    host = address(index)
    policy.write_text(json.dumps({"port_range": ports, "bind_address": "127.0.0.1", "public_address": host,
                                  "shared_cores_min": 0, "limits": limits or LIMITS}))
    return {
        "listen": host, "port": PORT, "provider_name": f"fleet{index}",
        "policy_file": str(policy), "usage_file": str(state / "usage.json"), "peers_file": str(state / "peers.json"),
        "drain_file": str(state / "drain.json"),
        "clients": [{"name": "dev", "token_sha256": hash_token(token), "admin": False}],
        "base_images": ["debian:bookworm-slim"],
        "peer_networks": ["127.0.0.0/8"], "peer_deny_networks": [],
        **devca.fleet_settings(ca, state / "fleet", f"fleet{index}", host, FLEET_PORT),
        "bootstrap_peers": [f"https://{address(index - 1)}:{FLEET_PORT}"] if index else [],
        "threads": 4, **gossip,
    }


def launch(directory: Path, index: int, settings: dict[str, Any]) -> subprocess.Popen:
    config = directory / f"p{index}" / "api.json"
    config.write_text(json.dumps(settings))
    with open(directory / f"p{index}" / "api.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "dockpool_api", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code in (200, 503):
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def start(count: int, directory: Path = DEFAULT_DIR, gossip: Optional[dict[str, Any]] = None,
          overrides: Optional[dict[int, dict[str, Any]]] = None, chain_when_up: bool = False) -> dict[str, Any]:
    """Start ``count`` providers; returns (and writes to fleet.json) what a client needs.

    ``chain_when_up`` (benchmarks): start them with no bootstrap peer and, once all answer,
    hand each its predecessor at once through the fleet's gossip route (the opening a
    bootstrap exchange makes), so the rounds are counted from one instant, not from a
    start spread over the seconds 50 processes take to boot."""
    if (directory / "fleet.json").exists():
        stop(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # the token file
    token = secrets.token_hex(24)  # never starts with "-", which a command line would read as an option
    ca = devca.make_ca(directory / "ca")
    providers = []
    for index in range(count):
        settings = provider_settings(directory, index, token, ca, gossip or {}, **(overrides or {}).get(index, {}))
        if chain_when_up:
            settings["bootstrap_peers"] = []
        proc = launch(directory, index, settings)
        providers.append({"index": index, "name": settings["provider_name"], "url": f"http://{address(index)}:{PORT}",
                          "pid": proc.pid, "config": str(directory / f"p{index}" / "api.json")})
        write_fleet(directory, {"token": token, "providers": providers})  # so stop() finds what was started
    for provider in providers:
        wait_up(provider["url"])
    if chain_when_up:
        link_chain(providers, ca, directory)
    return {"token": token, "providers": providers}


def link_chain(providers: list[dict[str, Any]], ca: tuple[Path, Path], directory: Path) -> None:
    """Give provider i its predecessor's entry, all at once, as the predecessor's own exchange
    would: the opening of a gossip exchange (over the fleet's mutual TLS, with a certificate of
    the fleet's CA naming the predecessor, since a provider takes from a caller not yet in its
    table only that caller's own entry), carrying the predecessor's signed entry as news."""
    def link(index: int) -> None:
        before = requests.get(f"{providers[index - 1]['url']}/v1/peers", timeout=10).json()["ip_address"][0]
        cert = devca.issue(ca, directory / "linker" / str(index - 1), before["Name"])
        answer = requests.post(f"https://{address(index)}:{FLEET_PORT}/v1/fleet/gossip", timeout=30,
                               json={"root": "0" * 16, "news": [{"alive": before}]},
                               cert=tuple(map(str, cert)), verify=str(ca[0]))
        answer.raise_for_status()

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(link, range(1, len(providers))))


def write_fleet(directory: Path, fleet: dict[str, Any]) -> None:
    path = directory / "fleet.json"
    path.write_text(json.dumps(fleet, indent=1) + "\n")
    os.chmod(path, 0o600)


def restart(directory: Path, index: int) -> int:
    """Start provider ``index`` again from its settings (after a kill); returns its new pid."""
    fleet = json.loads((directory / "fleet.json").read_text())
    settings = json.loads((directory / f"p{index}" / "api.json").read_text())
    proc = launch(directory, index, settings)
    fleet["providers"][index]["pid"] = proc.pid
    write_fleet(directory, fleet)
    return proc.pid


def kill(pid: int) -> None:
    """SIGKILL, as a crash: no goodbye to the peers."""
    os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def stop(directory: Path = DEFAULT_DIR) -> int:
    """Stop every provider fleet.json lists; returns how many were still running."""
    try:
        fleet = json.loads((directory / "fleet.json").read_text())
    except FileNotFoundError:
        return 0
    alive = [p["pid"] for p in fleet["providers"] if running(p["pid"], p["config"])]
    for pid in alive:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in alive) and time.monotonic() < deadline:  # bounded
        time.sleep(0.1)
    for pid in alive:
        if running(pid):
            os.kill(pid, signal.SIGKILL)
    (directory / "fleet.json").unlink()
    return len(alive)


def running(pid: int, config: Optional[str] = None) -> bool:
    """Whether ``pid`` runs (and, with ``config``, is our API with that settings file: pids get reused)."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our own children
    except ChildProcessError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[-1].startswith("Z"):
        return False
    return config is None or config.encode() in cmdline


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dockpool_dev.localfleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="start N providers on 127.0.0.2 and up")
    p.add_argument("count", type=int)
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p.add_argument("--interval", type=float, default=1.0, help="gossip_interval, seconds")
    p.add_argument("--fanout", type=int, default=3)
    p.add_argument("--expiry", type=float, default=10.0, help="peer_expiry, seconds")
    p = sub.add_parser("stop", help="stop them all")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    if args.command == "stop":
        print(f"stopped {stop(args.dir)} providers")
        return 0
    fleet = start(args.count, args.dir, {"gossip_interval": args.interval, "gossip_fanout": args.fanout,
                                         "peer_expiry": args.expiry})
    for provider in fleet["providers"]:
        print(f"{provider['name']}  {provider['url']}  pid {provider['pid']}")
    print(f"client token (every provider): {fleet['token']}\nlisted in {args.dir / 'fleet.json'}; "
          f"stop with: python -m dockpool_dev.localfleet stop --dir {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

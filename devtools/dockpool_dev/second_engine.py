"""A second Docker engine on this machine, for what needs two (moving an instance between
providers): its own daemon, data, socket and bridge, published ports through Docker's
userland proxy on loopback (no iptables of its own, so it never touches the first
engine's rules), and live-restore on, as the docker_engine role sets it. Started on first use
and left running, like the first."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import docker

from dockpool_dev.waiting import until

NAME = "dockpool-engine2"
SOCKET = f"/run/{NAME}/docker.sock"
HOST = f"unix://{SOCKET}"
BRIDGE = "dpe2"
SUBNET = "172.31.250.1/24"


def _answers() -> bool:
    try:
        docker.DockerClient(base_url=HOST, timeout=5).ping()
        return True
    except Exception:  # any failure means: not running yet
        return False


def _clear_stale_pidfiles() -> None:
    """A machine restored without its processes keeps /run: a pid file naming a pid now
    reused by another program makes dockerd wait for "its" containerd until it gives up."""
    for pidfile, program in ((f"/run/{NAME}/docker.pid", "dockerd"),
                             (f"/run/{NAME}/containerd/containerd.pid", "containerd")):
        try:
            pid = Path(pidfile).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            continue
        try:
            running = Path(f"/proc/{pid}/comm").read_text(encoding="ascii").strip()
        except OSError:
            running = ""
        if running != program:
            Path(pidfile).unlink(missing_ok=True)


def ensure(images: tuple[str, ...] = ("dockpool/debian-sshd:latest",)) -> docker.DockerClient:
    """The second engine, running, with ``images`` copied from the first."""
    if not _answers():
        if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True, check=False).returncode != 0:
            subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
            subprocess.run(["ip", "addr", "add", SUBNET, "dev", BRIDGE], check=True)
        subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
        for folder in (f"/var/lib/{NAME}", f"/run/{NAME}"):
            os.makedirs(folder, exist_ok=True)
        _clear_stale_pidfiles()
        with open(f"/run/{NAME}/dockerd.log", "ab") as log:
            subprocess.Popen(["dockerd", "--data-root", f"/var/lib/{NAME}", "--exec-root", f"/run/{NAME}",
                              "--pidfile", f"/run/{NAME}/docker.pid", "-H", HOST, "--bridge", BRIDGE,
                              "--iptables=false", "--ip6tables=false", "--live-restore"],
                             stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while not _answers():  # bounded
            if time.monotonic() > deadline:
                raise TimeoutError(f"the second engine did not answer; see {Path(f'/run/{NAME}/dockerd.log')}")
            time.sleep(0.5)
    client = docker.DockerClient(base_url=HOST, timeout=300)
    first = docker.from_env(timeout=300)
    for image in images:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            client.images.load(first.images.get(image).save(chunk_size=1024 * 1024, named=True))  # tags kept
    return client


def restart() -> docker.DockerClient:
    """Stop the second engine as `systemctl restart docker` does (SIGTERM, then wait until it
    has removed its pid file) and start it again; under live-restore its containers run on."""
    pidfile = Path(f"/run/{NAME}/docker.pid")
    os.kill(int(pidfile.read_text(encoding="ascii").strip()), signal.SIGTERM)
    until(lambda: not pidfile.exists(), 60, f"the second engine stopping (see /run/{NAME}/dockerd.log)")
    return ensure(())

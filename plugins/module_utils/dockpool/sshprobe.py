"""Wait until an instance's sshd greets: the moment a client can log in."""
from __future__ import annotations

import socket
import time


def ssh_banner(host: str, port: int, timeout: float = 1.0) -> str:
    """The server's identification line ('SSH-2.0-OpenSSH_9.2p1 ...'); raises OSError if none."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        data = b""
        while b"\n" not in data and len(data) < 256:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    line = data.split(b"\n", 1)[0].decode("ascii", "replace").strip()
    if not line.startswith("SSH-"):
        raise ConnectionError(f"no SSH banner from {host}:{port}")
    return line


def wait_for_ssh(host: str, port: int, timeout: float = 30.0, interval: float = 0.02) -> str:
    """Poll until the banner arrives; raises TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ssh_banner(host, port, timeout=min(1.0, max(0.05, deadline - time.monotonic())))
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"sshd on {host}:{port} did not answer within {timeout:.0f} s ({exc})") from exc
            time.sleep(interval)

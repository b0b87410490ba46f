"""Wait until an instance's sshd greets: the moment a client can log in."""
from __future__ import annotations

import socket
import time
from typing import Callable, Optional


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


def wait_for_ssh(
    host: str, port: int, timeout: float = 30.0, interval: float = 0.02, alive: Optional[Callable[[], bool]] = None
) -> str:
    """Poll until the banner arrives; raises TimeoutError after ``timeout`` seconds, or
    ChildProcessError as soon as ``alive()`` (asked every half second) says the instance died."""
    deadline = time.monotonic() + timeout
    next_check = time.monotonic() + 0.5
    while True:
        try:
            return ssh_banner(host, port, timeout=min(1.0, max(0.05, deadline - time.monotonic())))
        except OSError as exc:
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(f"sshd on {host}:{port} did not answer within {timeout:.0f} s ({exc})") from exc
            if alive is not None and now >= next_check:
                if not alive():
                    raise ChildProcessError(f"the instance stopped before sshd answered on port {port}") from exc
                next_check = now + 0.5
            time.sleep(interval)

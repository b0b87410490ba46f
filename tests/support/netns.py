"""A network namespace of the test's own, entered by the calling thread: what the test starts
from that thread while inside (processes, threads, sockets, iptables rules) lives in it, with its
own loopback and its own firewall, and goes with it. For rules that must not touch this machine's
own INPUT chain, which the shared Docker engine and other tests depend on."""
from __future__ import annotations

import ctypes
import os
import subprocess
import uuid
from contextlib import contextmanager
from typing import Iterator

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _enter(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextmanager
def own_network_namespace() -> Iterator[str]:
    """Make a namespace with loopback up, move this thread into it, and back out and remove it at
    the end (its processes must have ended by then). Yields its name."""
    name = f"dockpool-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=30)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True, timeout=30)
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _enter(target)
        finally:
            os.close(target)
        try:
            yield name
        finally:
            _enter(home)
    finally:
        os.close(home)
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)

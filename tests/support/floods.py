"""Floods from a loopback source (127.0.0.5 unless told), as an unauthenticated attacker makes them, bounded in count
and time: connections held open and reopened when the server closes them, optionally sending a
request header one byte at a time (slowloris), or a TLS request's body one byte at a time; and a
prober that measures what a real client gets meanwhile from another source address."""
from __future__ import annotations

import http.client
import select
import socket
import ssl
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

FLOOD_SOURCE = "127.0.0.5"  # the attacker's address (the whole 127/8 is this machine's)
CLIENT_SOURCE = "127.0.0.2"  # a real client's, another source
MAX_CONNECTIONS = 1200  # past nginx's old 1024 per worker, below the test process's descriptors
MAX_SECONDS = 60.0
OPENS_PER_TICK = 10


@dataclass
class FloodStats:
    opened: int = 0
    failed: int = 0  # connects refused or timed out
    closed_by_server: int = 0
    peak: int = 0


@dataclass
class _Held:
    sock: socket.socket
    sent: int = 0
    due: float = 0.0


def _payload(host: str, port: int, mode: str) -> bytes:
    if mode == "header":  # a header that never ends
        return f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\nX-Slow: ".encode() + b"a" * 4096
    if mode == "body":  # a body that never arrives
        return (f"POST /v1/peers HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                "Content-Length: 100000\r\n\r\n").encode() + b" " * 100000
    return b""


def _open(host: str, port: int, mode: str, tls: bool, source: str) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=2, source_address=(source, 0))
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        sock = context.wrap_socket(sock)
    if mode == "body":  # the header at once: the body is what trickles
        head = _payload(host, port, mode)
        sock.sendall(head[:head.index(b"\r\n\r\n") + 4])
    sock.setblocking(False)
    return sock


class _Flood:
    def __init__(self, host: str, port: int, count: int, seconds: float, trickle: float, mode: str, tls: bool,
                 source: str) -> None:
        self.host, self.port, self.count, self.trickle, self.mode, self.tls = host, port, count, trickle, mode, tls
        self.source = source
        self.end = time.monotonic() + seconds
        self.stats, self.stop, self.held = FloodStats(), threading.Event(), []  # type: list[_Held]
        payload = _payload(host, port, mode)
        self.start = payload.index(b"\r\n\r\n") + 4 if mode == "body" else 0
        self.payload = payload

    def running(self) -> bool:
        return not self.stop.is_set() and time.monotonic() < self.end

    def fill(self) -> None:
        for _ in range(min(OPENS_PER_TICK, self.count - len(self.held))):  # about 500 a second at most
            if not self.running():
                return
            try:
                self.held.append(_Held(_open(self.host, self.port, self.mode, self.tls, self.source), self.start))
                self.stats.opened += 1
            except (ConnectionRefusedError, ConnectionResetError):  # refused at once (a firewall's reset): try on
                self.stats.failed += 1
            except OSError:  # a timeout: the server is full; wait for the next tick
                self.stats.failed += 1
                return
        self.stats.peak = max(self.stats.peak, len(self.held))

    def drop(self, held: _Held) -> None:
        self.held.remove(held)
        held.sock.close()
        self.stats.closed_by_server += 1

    def read(self) -> None:
        poller = select.poll()  # select() stops at descriptor 1024
        for held in self.held:
            poller.register(held.sock, select.POLLIN)
        readable = {fd for fd, _ in poller.poll(100)} if self.held else set()
        for held in [h for h in self.held if h.sock.fileno() in readable]:
            try:
                data = held.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except OSError:
                data = b""
            if not data or self.mode:  # closed, or answered (a 408/400 ends the request too)
                self.drop(held)

    def trickle_bytes(self) -> None:
        now = time.monotonic()
        for held in [h for h in self.held if self.mode and h.due <= now]:
            try:
                held.sock.send(self.payload[held.sent:held.sent + 1])
                held.sent, held.due = held.sent + 1, now + self.trickle
            except (ssl.SSLWantWriteError, BlockingIOError):
                continue
            except OSError:
                self.drop(held)

    def run(self) -> None:
        try:
            while self.running():
                self.fill()
                self.read()
                self.trickle_bytes()
                time.sleep(0.02)
        finally:
            for held in self.held:
                held.sock.close()


@contextmanager
def flood(host: str, port: int, count: int, seconds: float, trickle: float = 3.0, mode: str = "",
          tls: bool = False, source: str = FLOOD_SOURCE) -> Iterator[FloodStats]:
    """``count`` connections from ``source`` to host:port for at most ``seconds``, each reopened
    when the server closes it. ``mode``: "" (bare TCP, nothing sent), "header" (a request header, one
    byte every ``trickle`` seconds) or "body" (a whole header, then its body one byte at a time)."""
    assert count <= MAX_CONNECTIONS and seconds <= MAX_SECONDS, "floods stay bounded"
    attack = _Flood(host, port, count, seconds, trickle, mode, tls, source)
    thread = threading.Thread(target=attack.run, name="flood", daemon=True)
    thread.start()
    try:
        yield attack.stats
    finally:
        attack.stop.set()
        thread.join(timeout=10)


@dataclass
class Probes:
    latencies: list[float] = field(default_factory=list)  # seconds, of the answered ones
    failures: list[str] = field(default_factory=list)

    @property
    def answered(self) -> int:
        return len(self.latencies)

    def summary(self) -> str:
        if not self.latencies:
            return f"0 of {len(self.failures)} answered ({self.failures[:1]})"
        ordered = sorted(self.latencies)
        return (f"{self.answered} of {self.answered + len(self.failures)} answered, median "
                f"{statistics.median(ordered) * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
                + (f"; failures: {self.failures[:2]}" if self.failures else ""))


def probe(host: str, port: int, path: str, count: int, pause: float, timeout: float = 5.0,
          headers: Optional[dict[str, str]] = None, tls: bool = False) -> Probes:
    """``count`` requests from CLIENT_SOURCE, one every ``pause`` seconds; each must answer 200."""
    probes = Probes()
    for _ in range(count):
        began = time.monotonic()
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=timeout, source_address=(CLIENT_SOURCE, 0), context=context)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(CLIENT_SOURCE, 0))
        try:
            connection.request("GET", path, headers=headers or {})
            answer = connection.getresponse()
            answer.read()
            if answer.status == 200:
                probes.latencies.append(time.monotonic() - began)
            else:
                probes.failures.append(f"status {answer.status}")
        except OSError as exc:
            probes.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()
        time.sleep(max(0.0, pause - (time.monotonic() - began)))
    return probes

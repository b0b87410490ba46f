"""The one client between providers: every call from this provider to another goes through a
``Transport``: gossip, identity checks, moves, drains, replicas and restores over the fleet's
mutual TLS, and (in plain mode, with the same bounds) P2PRC's ``/server_info`` probe.

Each call (a ``Call``) has a deadline for the whole request (connect, TLS handshake, sending,
and every read of the answer, however the other end trickles it) and a bound on the answer's
body; a redirect is never followed. Whatever goes wrong underneath (a refused connection, a
certificate of another CA or another member, a timeout, a malformed or too large answer) comes
out as one error, ``Unreachable``, raised here and nowhere else. ``reach`` alone decides where a
member is reached; ``InProcess`` is a fleet of transports in one process, for tests and the
simulation (as hashicorp/memberlist's MockNetwork).
"""
from __future__ import annotations

import http.client
import io
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Callable, Iterator, Mapping, Optional, Protocol, Union
from urllib.parse import quote, unquote

from dockpool.addresses import url_host
from dockpool.networks import NetworkRule

from . import relays
from .members import Member
from .tls import check_name

Body = Union[bytes, IO[bytes], None]
DEFAULT_RULE = NetworkRule()  # the peer rule's default: loopback, link-local, multicast are never dialled
SEND_PIECE = 64 * 1024  # bytes sent per write, so that a slow reader meets the deadline between writes


class Unreachable(OSError):
    """No complete answer from the other provider (the one error this module raises). An OSError,
    as the socket errors it stands for were, so that a caller that also touches files catches both."""


@dataclass(frozen=True)
class Endpoint:
    """Where a call goes: an address and port, and the fleet certificate's name expected there
    (None: whichever member answers, for a bootstrap address; never checked in plain mode)."""

    address: str
    port: int
    name: Optional[str] = None


@dataclass(frozen=True)
class Call:
    """One request: ``path`` as ``route_path`` builds it; ``deadline`` seconds for all of it; at
    most ``most`` bytes of answer body read."""

    method: str
    path: str
    body: Body = None
    headers: Mapping[str, str] = field(default_factory=dict)
    deadline: float = 30.0
    most: int = 64 * 1024


class Answer(Protocol):
    status: int

    def header(self, name: str) -> str: ...

    def read(self, size: int = -1) -> bytes: ...

    def close(self) -> None: ...


class Transport(Protocol):
    def open(self, to: Union[Member, Endpoint], call: Call) -> Answer:
        """The answer to ``call``, open for reading (the caller closes it); raises Unreachable."""
        ...


def reach(member: Member, rule: NetworkRule = DEFAULT_RULE,
          left: Callable[[], float] = lambda: float("inf")) -> Endpoint:
    """Where the fleet reaches ``member``: the one place that decides. A member behind NAT is
    reached through the first of its signed relays that answers (docs/nat.md), under the same
    certificate name whatever the path; only relays at addresses ``rule`` (the peer rule) allows
    are dialled at all. ``left()``: the call's time left, which the relays' lookups and probes
    spend (it raises TimeoutError once the time is up)."""
    if member.seal is None:
        raise Unreachable(f"{member.name or member.address} is not a member of the fleet: reached over its mutual TLS only")
    if member.seal.relays:
        allowed = relays.admitted(member.seal.relays, rule.permits, left)
        if not allowed:
            raise Unreachable(f"{member.name}: none of its relays ({', '.join(p.address for p in member.seal.relays)}) "
                              "is at an address allowed for peers")
        path = relays.LIVENESS.first_live(allowed, left=left) or allowed[0]
        return Endpoint(path.address, path.fleet_port, member.name)
    return Endpoint(member.address, member.seal.fleet_port, member.name)


def ask(transport: Transport, to: Union[Member, Endpoint], call: Call) -> tuple[int, bytes]:
    """A short answer whole: its status and body (at most ``call.most`` bytes, or Unreachable)."""
    answer = transport.open(to, call)
    try:
        return answer.status, answer.read()
    finally:
        answer.close()


def route_path(*segments: str) -> str:
    """The path of a fleet route: each segment quoted whole, so that no value (an id a client
    sent, a name) can add a segment, climb one (``..``), or end the path (``?``, ``#``, spaces,
    line breaks). Every call to a member is built here, and ``open`` takes nothing else."""
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"a fleet path segment may not be empty, '.' or '..': {segments!r}")
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def _rebuilt(built: str) -> str:
    try:
        return route_path(*(unquote(segment) for segment in built[1:].split("/")))
    except ValueError:
        return ""


def check_path(path: str) -> None:
    """A ``path`` that ``route_path()`` would not have built is refused before anything is sent."""
    if not path.startswith("/") or _rebuilt(path) != path:
        raise ValueError(f"not a fleet path built by route_path(): {path[:100]!r}")


@contextmanager
def _mapped(what: str, deadline: float) -> Iterator[None]:
    """The one boundary: whatever the socket, TLS or HTTP layers raise becomes Unreachable."""
    try:
        yield
    except Unreachable:
        raise
    except (TimeoutError, socket.timeout):
        raise Unreachable(f"{what}: no complete answer within {deadline:g} s") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:  # ssl.SSLError and WrongPeer are OSErrors
        raise Unreachable(f"{what}: {exc or type(exc).__name__}") from None


class _Clock:
    """The time left of one call's deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline, self.ends = deadline, time.monotonic() + deadline

    def left(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


class _Reader(io.RawIOBase):
    """Reads of the socket, each given only what is left of the deadline."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self.sock, self.clock = sock, clock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "memoryview | bytearray") -> int:  # type: ignore[override]
        self.sock.settimeout(self.clock.left())
        return self.sock.recv_into(buffer)


class _Socket:
    """What http.client needs of a socket, bounded by the call's deadline; the socket is closed
    once the connection and the answer's reader are both done with it."""

    def __init__(self, sock: socket.socket, clock: _Clock) -> None:
        self.sock, self.clock = sock, clock
        self._users = 1
        self._lock = threading.Lock()

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        for start in range(0, len(view), SEND_PIECE):
            self.sock.settimeout(self.clock.left())
            self.sock.sendall(view[start:start + SEND_PIECE])

    def makefile(self, mode: str = "rb", buffering: int = -1) -> IO[bytes]:
        with self._lock:
            self._users += 1
        socket_ = self

        class Reader(_Reader):
            def close(self) -> None:
                if not self.closed:
                    super().close()
                    socket_.close()

        return io.BufferedReader(Reader(self.sock, self.clock))

    def close(self) -> None:
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self.sock.close()


class _Connection(http.client.HTTPConnection):
    def __init__(self, to: Endpoint, context: Optional[ssl.SSLContext], clock: _Clock) -> None:
        super().__init__(to.address, to.port, timeout=clock.deadline)
        self.to, self.context, self.clock = to, context, clock

    def connect(self) -> None:
        # a DNS name (a bootstrap address) is looked up within the deadline: getaddrinfo has no timeout
        address = next(iter(relays.resolve(self.to.address, self.to.port, self.clock.left())), None)
        if address is None:
            raise OSError(f"{self.to.address} does not resolve")
        sock = socket.create_connection((address, self.to.port), timeout=self.clock.left())
        try:
            if self.context is not None:
                sock.settimeout(self.clock.left())  # the handshake as a whole (CPython bounds it so)
                sock = self.context.wrap_socket(sock)
                check_name(sock, self.to.name)
        except BaseException:
            sock.close()
            raise
        self.sock = _Socket(sock, self.clock)  # what http.client uses of a socket, bounded by the deadline


class _HttpAnswer:
    def __init__(self, response: http.client.HTTPResponse, connection: _Connection, call: Call, what: str) -> None:
        self.response, self.connection, self.call, self.what = response, connection, call, what
        self.status = response.status
        self._read = 0
        length = response.getheader("Content-Length", "")
        if length.isdigit() and int(length) > call.most:
            self.close()
            raise Unreachable(f"{what}: the answer ({length} bytes) exceeds {call.most} bytes")

    def header(self, name: str) -> str:
        return self.response.getheader(name, "") or ""

    def read(self, size: int = -1) -> bytes:
        """At most ``size`` bytes of the body (all of it for -1); more than ``call.most`` in all is Unreachable."""
        want = self.call.most + 1 - self._read if size < 0 else min(size, self.call.most + 1 - self._read)
        with _mapped(self.what, self.call.deadline):
            data = self.response.read(max(0, want)) if want > 0 else self.response.read(1)
        self._read += len(data)
        if self._read > self.call.most:
            self.close()
            raise Unreachable(f"{self.what}: the answer exceeds {self.call.most} bytes")
        if size < 0:  # the whole body: read on to its end (it fit)
            return data
        return data

    def close(self) -> None:
        self.response.close()
        self.connection.close()


class HttpTransport:
    """The real client: mutual TLS with ``context`` (the fleet's client context, its peer's
    certificate name checked), or plain HTTP with None (P2PRC's ``/server_info`` only). ``rule``:
    the peer rule, which a member's relays must pass before they are dialled."""

    def __init__(self, context: Optional[ssl.SSLContext], rule: NetworkRule = DEFAULT_RULE) -> None:
        self.context, self.rule = context, rule

    def endpoint(self, member: Member, left: Callable[[], float] = lambda: float("inf")) -> Endpoint:
        if self.context is None:  # plain: a P2PRC peer, on its API port, never a member's fleet port
            return Endpoint(member.address, member.server_port)
        return reach(member, self.rule, left)

    def open(self, to: Union[Member, Endpoint], call: Call) -> Answer:
        check_path(call.path)
        clock = _Clock(call.deadline)  # started before the path is chosen: probing relays spends it too
        if isinstance(to, Endpoint):
            target = to
        else:
            with _mapped(to.name or to.address, call.deadline):
                target = self.endpoint(to, clock.left)
        what = f"{target.name or target.address} ({url_host(target.address)}:{target.port})"
        connection = _Connection(target, self.context, clock)
        headers = {"Host": f"{url_host(target.address)}:{target.port}", "Connection": "close",
                   "Accept": "application/json", **({"Content-Type": "application/json"} if call.body is not None else {}),
                   **call.headers}
        with _mapped(what, call.deadline):
            try:
                connection.request(call.method, call.path, body=call.body, headers=headers)
                response = connection.getresponse()
            except BaseException:
                connection.close()
                raise
        return _HttpAnswer(response, connection, call, what)


# ---- in one process: a fleet of transports for tests and the simulation ------------------------

Handler = Callable[[str, Call, bytes], tuple[int, bytes]]  # (caller's name, call, body) -> (status, body)


class _BytesAnswer:
    def __init__(self, status: int, body: bytes, call: Call, what: str) -> None:
        self.status, self._body, self.call, self.what = status, io.BytesIO(body), call, what
        if len(body) > call.most:
            raise Unreachable(f"{what}: the answer exceeds {call.most} bytes")

    def header(self, name: str) -> str:
        return ""

    def read(self, size: int = -1) -> bytes:
        return self._body.read(size)

    def close(self) -> None:
        self._body.close()


class InProcess:
    """Transports that reach each other by member name in this process: ``network.transport(name)``
    is the one member ``name`` calls with; ``serve(name, handler)`` answers its calls. A member
    with no handler (or ``down``) is Unreachable, as a dead one is. Bytes are counted both ways."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.down: set[str] = set()
        self.sent: dict[str, int] = {}  # by caller: request and answer bodies it sent
        self._lock = threading.Lock()

    def serve(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler

    def transport(self, caller: str) -> "InProcessTransport":
        return InProcessTransport(self, caller)

    def count(self, name: str, size: int) -> None:
        with self._lock:
            self.sent[name] = self.sent.get(name, 0) + size


@dataclass
class InProcessTransport:
    network: InProcess
    caller: str

    def open(self, to: Union[Member, Endpoint], call: Call) -> Answer:
        check_path(call.path)
        name = to.name if isinstance(to, Member) else (to.name or "")
        handler = self.network.handlers.get(name)
        if handler is None or name in self.network.down or self.caller in self.network.down:
            raise Unreachable(f"{name or 'the address'}: no answer")
        body = call.body if isinstance(call.body, bytes) else (call.body.read() if call.body is not None else b"")
        self.network.count(self.caller, len(body))
        status, answer = handler(self.caller, call, body)
        self.network.count(name, len(answer))
        return _BytesAnswer(status, answer, call, name)

"""The one client between providers, against real sockets and real TLS on 127.0.0.1: the whole
request's deadline holds however the other end trickles, the answer's size is bounded, a wrong
certificate (another CA, or another member's) is refused, and every failure is one error type."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import pytest

from dockpool_api.fleet.members import Member, Seal
from dockpool_api.fleet.tls import FleetTLS, serve
from dockpool_api.fleet.transport import Call, Endpoint, HttpTransport, InProcess, Unreachable, ask, reach, route_path
from dockpool_dev import devca


@contextmanager
def raw_server(behave: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that reads a request and then does ``behave`` with the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                    behave(conn)
                except OSError:
                    pass  # the client gave up: what the test wants

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def trickle(conn: socket.socket) -> None:
    """A complete-looking answer, one byte each 0.2 s (at most 60 bytes: bounded)."""
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 21:
        conn.sendall(bytes([byte]))
        time.sleep(0.2)


def body_trickle(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n")
    for _ in range(30):
        conn.sendall(b"y")
        time.sleep(0.2)


def huge(length: bool) -> Callable[[socket.socket], None]:
    def send(conn: socket.socket) -> None:
        size = 1024 * 1024
        head = f"HTTP/1.1 200 OK\r\n{'Content-Length: %d' % size if length else 'Connection: close'}\r\n\r\n"
        conn.sendall(head.encode())
        conn.sendall(b"z" * size)
    return send


def fits(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"k" * 1000)


PLAIN = HttpTransport(None)


@pytest.mark.parametrize("behave", [trickle, body_trickle], ids=["headers", "body"])
def test_the_whole_request_has_one_deadline_however_the_answer_trickles(behave):
    with raw_server(behave) as port:
        started = time.monotonic()
        with pytest.raises(Unreachable, match="within 1 s"):
            ask(PLAIN, Endpoint("127.0.0.1", port), Call("GET", "/server_info", deadline=1.0))
        took = time.monotonic() - started
    assert 0.9 <= took < 1.6  # the deadline, not a read timeout that each trickled byte renews (60 bytes: 12 s)


def test_a_silent_server_costs_the_deadline_and_a_closed_port_fails_at_once():
    with raw_server(lambda conn: time.sleep(3)) as port:
        started = time.monotonic()
        with pytest.raises(Unreachable):
            ask(PLAIN, Endpoint("127.0.0.1", port), Call("GET", "/server_info", deadline=0.5))
        assert time.monotonic() - started < 1.2
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    closed = free.getsockname()[1]
    free.close()
    with pytest.raises(Unreachable, match="refused"):
        ask(PLAIN, Endpoint("127.0.0.1", closed), Call("GET", "/server_info", deadline=2.0))


@pytest.mark.parametrize("length", [True, False], ids=["announced", "streamed"])
def test_an_answer_over_the_read_bound_is_refused(length):
    with raw_server(huge(length)) as port:
        with pytest.raises(Unreachable, match="exceeds 65536 bytes"):
            ask(PLAIN, Endpoint("127.0.0.1", port), Call("GET", "/server_info", deadline=5.0, most=65536))
    with raw_server(fits) as port:
        assert ask(PLAIN, Endpoint("127.0.0.1", port), Call("GET", "/server_info", most=1000)) == (200, b"k" * 1000)
        with pytest.raises(Unreachable, match="exceeds 999 bytes"):
            ask(PLAIN, Endpoint("127.0.0.1", port), Call("GET", "/server_info", most=999))


def test_a_path_route_path_would_not_build_is_refused_before_anything_is_sent():
    with pytest.raises(ValueError):
        PLAIN.open(Endpoint("127.0.0.1", 9), Call("GET", "/v1/moves/../../fleet/exchange"))
    assert route_path("v1", "moves", "a/b") == "/v1/moves/a%2Fb"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A member's mutual-TLS listener (the real one, tls.serve) answering who called."""
    base = tmp_path_factory.mktemp("fleet")
    ca = devca.make_ca(base / "ca")

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [f'{{"caller": "{environ["dockpool.fleet_peer"]}"}}'.encode()]

    def tls(directory: str, name: str, issuer=ca) -> FleetTLS:
        return FleetTLS(*map(str, devca.issue(issuer, base / directory, name)), str(ca[0]))

    server = serve(app, "127.0.0.1", 0, tls("server", "target"))
    yield server.server_address[1], tls, ca, base
    server.shutdown()


def member(name: str, port: int) -> Member:
    return Member(name=name, server_port=8088, ipv4="127.0.0.1", seal=Seal("k" * 44, 1, "s" * 88, port))


def test_mutual_tls_reaches_the_member_named_and_refuses_any_other_certificate(fleet):
    port, tls, ca, base = fleet
    source = HttpTransport(tls("source", "source").client_context())
    assert reach(member("target", port)) == Endpoint("127.0.0.1", port, "target")
    assert ask(source, member("target", port), Call("GET", "/v1/fleet/identity")) == (200, b'{"caller": "source"}')
    with pytest.raises(Unreachable, match="names 'target', not 'someone-else'"):  # the same CA, another member
        ask(source, member("someone-else", port), Call("GET", "/v1/fleet/identity"))
    stranger_ca = devca.make_ca(base / "stranger-ca", "another operator's CA")
    stranger = HttpTransport(FleetTLS(*map(str, devca.issue(stranger_ca, base / "stranger", "source")),
                                      str(stranger_ca[0])).client_context())
    with pytest.raises(Unreachable, match="certificate verify failed"):  # a CA this one does not trust
        ask(stranger, member("target", port), Call("GET", "/v1/fleet/identity"))
    with pytest.raises(Unreachable):  # a member's fleet port spoken to in plain HTTP: no answer
        ask(PLAIN, Endpoint("127.0.0.1", port), Call("GET", "/v1/fleet/identity", deadline=2.0))


def test_a_p2prc_peer_is_never_reached_over_the_fleet_transport():
    with pytest.raises(Unreachable, match="not a member"):
        reach(Member(name="p2prc", server_port=8088, ipv4="127.0.0.1"))


def test_the_in_process_transport_answers_by_name_bounds_the_answer_and_fails_as_the_real_one():
    network = InProcess()
    network.serve("b", lambda caller, call, body: (200, f"{caller}:{call.path}:{len(body)}".encode()))
    a = network.transport("a")
    assert ask(a, member("b", 1), Call("POST", "/v1/fleet/exchange", body=b"12345")) == (200, b"a:/v1/fleet/exchange:5")
    assert network.sent == {"a": 5, "b": len(b"a:/v1/fleet/exchange:5")}
    with pytest.raises(Unreachable):
        ask(a, member("b", 1), Call("GET", "/v1/fleet/identity", most=3))
    network.down.add("b")
    with pytest.raises(Unreachable):
        ask(a, member("b", 1), Call("GET", "/v1/fleet/identity"))
    with pytest.raises(Unreachable):
        ask(a, member("nobody", 1), Call("GET", "/v1/fleet/identity"))

"""The listeners' bounds per source (issue 34, items 10 and 11): the fleet listener's handshakes
per address, and the plain listener's settings and deadlines, refused out of range naming the field."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import pytest

from dockpool.errors import InvalidInput
from dockpool_api.config import config_from_dict
from dockpool_api.fleet.tls import Handshakes
from dockpool_api.plain_listener import PlainServer
from dockpool_api.plain_listener import settings as plain_settings


def test_handshakes_are_bounded_per_source_and_in_all():
    handshakes = Handshakes(total=5, per_source=2)
    assert handshakes.take("192.0.2.1") and handshakes.take("192.0.2.1")
    assert not handshakes.take("192.0.2.1")  # its share is taken
    assert handshakes.take("192.0.2.2") and handshakes.take("192.0.2.2") and handshakes.take("192.0.2.3")
    assert not handshakes.take("192.0.2.4")  # all five under way
    handshakes.give("192.0.2.1")
    assert handshakes.take("192.0.2.4") and not handshakes.take("192.0.2.1")
    for source in ("192.0.2.1", "192.0.2.2", "192.0.2.2", "192.0.2.3", "192.0.2.4"):
        handshakes.give(source)
    assert handshakes.take("192.0.2.1") and handshakes.take("192.0.2.1")


def test_the_tunnels_delivery_address_has_a_larger_share_still_bounded():
    """Behind NAT every relayed caller arrives from where the tunnels deliver (docs/nat.md)."""
    handshakes = Handshakes(total=64, per_source=2, tunnels=frozenset({"10.0.0.5"}), per_tunnel=6)
    assert all(handshakes.take("10.0.0.5") for _ in range(6))
    assert not handshakes.take("10.0.0.5")  # bounded all the same
    assert handshakes.take("192.0.2.1") and handshakes.take("192.0.2.1") and not handshakes.take("192.0.2.1")


@pytest.mark.parametrize("setting, value", [("connections_per_source", 0), ("connections_per_source", "16"),
                                            ("connections_per_source", True), ("header_timeout", 0),
                                            ("header_timeout", 301), ("header_timeout", "10")])
def test_plain_listener_bounds_out_of_range_are_refused_naming_them(setting, value):
    with pytest.raises(InvalidInput) as raised:
        config_from_dict({setting: value})
    assert raised.value.field == setting and setting in raised.value.message


def test_plain_listener_bounds_have_defaults_and_take_the_operators():
    assert (config_from_dict({}).connections_per_source, config_from_dict({}).header_timeout) == (32, 10.0)
    config = config_from_dict({"connections_per_source": 4, "header_timeout": 5})
    assert (config.connections_per_source, config.header_timeout) == (4, 5.0)


@contextmanager
def plain_server(app: Callable, header_seconds: float) -> Iterator[int]:
    """The real plain listener on a loopback port, in a thread; yields the port."""
    server = PlainServer(app, 4, header_seconds, host="127.0.0.1", port=0, threads=2, **plain_settings())
    threading.Thread(target=server.run, daemon=True).start()
    try:
        yield server.socket.getsockname()[1]
    finally:
        server.task_dispatcher.shutdown()
        server.close()


def test_a_request_answered_slowly_is_not_cut_at_the_header_timeout():
    """A drain or a move answers after minutes: the header deadline is the client's, not the handler's."""
    def slow(environ: dict, start_response: Callable) -> list[bytes]:
        time.sleep(3.5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    with plain_server(slow, header_seconds=1) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            answer = b""
            while not answer.endswith(b"done"):  # the head and the body may come in two segments
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"done"), answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
            started = time.monotonic()
            assert silent.recv(1) == b""  # a connection that sends nothing is still cut
            assert 0.9 < time.monotonic() - started < 4

"""The client side between providers: one request to a member over the fleet's mutual TLS,
its path built by ``route_path``, and the plain HTTP/1.0 exchange that gossip and the
P2PRC probes use (to be replaced by one client).
"""
from __future__ import annotations

import http.client
import socket
import ssl
import time
from typing import IO, Callable, Optional, Union
from urllib.parse import quote, unquote

from dockpool.addresses import family, url_host

from .tls import check_name

_MAX_HEAD = 16384  # bytes of status line and headers accepted from a peer


def exchange(address: str, port: int, deadline: float, max_bytes: int, path: str = "/server_info",
             body: Optional[bytes] = None, headers: Optional[dict[str, str]] = None,
             wrap: Optional[Callable[[socket.socket], socket.socket]] = None) -> tuple[int, bytes]:
    """One HTTP/1.0 request (GET, or POST of JSON ``body``) within ``deadline`` seconds for the
    whole exchange (connect, send, every read): a peer trickling one byte a second costs at most
    that, and an answer over ``max_bytes`` is cut off. Returns the status and the body;
    raises OSError or ValueError when there is no complete answer. Redirects are not followed.
    ``wrap`` turns the connected socket into another (the fleet's mutual TLS) within the deadline."""
    ends = time.monotonic() + deadline
    host = url_host(address)
    lines = [f"{'GET' if body is None else 'POST'} {path} HTTP/1.0", f"Host: {host}:{port}", "Accept: application/json"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    answer = bytearray()
    with socket.socket(family(address), socket.SOCK_STREAM) as plain:
        plain.settimeout(deadline)
        plain.connect((address, port))
        sock = wrap(plain) if wrap is not None else plain
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
            while len(answer) <= max_bytes + _MAX_HEAD:
                left = ends - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no complete answer within {deadline} s")
                sock.settimeout(left)
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:  # the socket's own words differ under TLS; the rule is this one
                    raise TimeoutError(f"no complete answer within {deadline} s") from None
                if not chunk:
                    break
                answer += chunk
            else:
                raise ValueError(f"the answer exceeds {max_bytes} bytes")
        finally:
            sock.close()
    head, found, content = bytes(answer).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if not found or len(status) < 2 or not status[1].isdigit():
        raise ValueError(f"answered {head[:40]!r}")
    return int(status[1]), content


def wrapper(context: ssl.SSLContext, expected: Optional[str]) -> Callable[[socket.socket], socket.socket]:
    """For peers.exchange(): the connected socket wrapped in TLS, its peer's name checked."""

    def wrap(sock: socket.socket) -> socket.socket:
        tls = context.wrap_socket(sock)
        check_name(tls, expected)
        return tls

    return wrap


class _Connection(http.client.HTTPSConnection):
    def __init__(self, address: str, port: int, context: ssl.SSLContext, name: str, timeout: float) -> None:
        super().__init__(address, port, context=context, timeout=timeout)
        self.expected = name

    def connect(self) -> None:
        super().connect()
        check_name(self.sock, self.expected)


def route_path(*segments: str) -> str:
    """The path of a fleet route: each segment quoted whole, so that no value (an id a client
    sent, a name) can add a segment, climb one (``..``), or end the path (``?``, ``#``, spaces,
    line breaks). Every call to a member is built here, and ``request`` takes nothing else."""
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"a fleet path segment may not be empty, '.' or '..': {segments!r}")
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def request(context: ssl.SSLContext, address: str, port: int, name: str, method: str, path: str,
            body: Optional[Union[bytes, IO[bytes]]] = None, headers: Optional[dict[str, str]] = None,
            timeout: float = 30.0) -> http.client.HTTPResponse:
    """One request to the member ``name`` at address:port over mutual TLS; the answer is read as a
    stream by the caller (who closes it). Raises OSError (ssl.SSLError, WrongPeer included); a
    ``path`` that ``route_path()`` would not have built is a ValueError, before anything is sent."""
    if not path.startswith("/") or _rebuilt(path) != path:
        raise ValueError(f"not a fleet path built by route_path(): {path[:100]!r}")
    connection = _Connection(address, port, context, name, timeout)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        return connection.getresponse()
    except BaseException:
        connection.close()
        raise


def _rebuilt(built: str) -> str:
    try:
        return route_path(*(unquote(segment) for segment in built[1:].split("/")))
    except ValueError:
        return ""

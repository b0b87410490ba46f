"""Mutual TLS between the providers of a fleet: the certificates, and the fleet's own listener
(the client side is transport.py).

A provider is a member because it holds a certificate from a CA the operator trusts (made
on the controller by the play, as Consul and Nomad agents hold theirs), not because
something at an address answers. Its identity is the certificate's common name, which is
its ``provider_name``: a provider that changes address stays the same member.

The listener runs in the API's own process, so the caller's verified name comes from the
TLS socket the request arrived on (``FLEET_PEER`` in the WSGI environ, which no HTTP header
can set), never from a header a front could forget to clear. It serves only the fleet's
routes (access.py refuses the rest there), at most ``CONNECTIONS`` members' connections at once.
A connection takes one of those slots only once its handshake has proved a fleet certificate;
before that it holds one of ``HANDSHAKES`` (at most ``HANDSHAKES_PER_SOURCE`` from one address)
for ``HANDSHAKE_SECONDS`` at most, so bare connections from one source cannot shut members out.
Behind NAT every relayed caller arrives from one address, where the tunnels deliver: that source
gets ``HANDSHAKES_PER_TUNNEL``, more than one caller's share and still bounded, and each relay
holds every real source to ``relay_connections_per_source`` (roles/relay, docs/nat.md).
"""
from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any, Callable, Optional
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from dockpool.addresses import family
from dockpool.errors import InvalidInput

log = logging.getLogger("dockpool.fleet")
FLEET_PEER = "dockpool.fleet_peer"  # environ key: the verified common name of the calling provider
CONNECTIONS = 16  # members' connections served at once; more are closed at once
HANDSHAKES = 64  # handshakes under way at once, from anyone
HANDSHAKES_PER_SOURCE = 4  # of those, from one address (a member opens one connection per request)
HANDSHAKES_PER_TUNNEL = 24  # from the tunnels' delivery address: every relay's callers at once (relays cap each source)
HANDSHAKE_SECONDS = 3.0
IO_SECONDS = 120.0


class WrongPeer(ssl.SSLError):
    """The other end holds a fleet certificate, but for another provider than the one asked for."""


def common_name(cert: Optional[dict[str, Any]]) -> str:
    """The subject's common name of a certificate as ``getpeercert()`` gives it ('' if none)."""
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


def file_common_name(path: str) -> str:
    from cryptography import x509  # the API's own dependency, imported where it is needed
    from cryptography.x509.oid import NameOID
    with open(path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


@dataclass(frozen=True)
class FleetTLS:
    """This provider's fleet certificate and key, and the CAs whose members it accepts."""

    cert: str
    key: str
    cas: str

    def _context(self, purpose: int) -> ssl.SSLContext:
        context = ssl.SSLContext(purpose)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=self.cas)
        context.load_cert_chain(self.cert, self.key)
        return context

    def server_context(self) -> ssl.SSLContext:
        return self._context(ssl.PROTOCOL_TLS_SERVER)

    def client_context(self) -> ssl.SSLContext:
        context = self._context(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # the identity checked is the name, not the address (check_name)
        return context

    @classmethod
    def load(cls, cert: str, key: str, cas: str, provider_name: str) -> "FleetTLS":
        """Check the files once at start: they load, and the certificate names this provider."""
        tls = cls(cert, key, cas)
        try:
            tls.server_context()
            name = file_common_name(cert)
        except (OSError, ValueError, ssl.SSLError) as exc:
            raise InvalidInput(f"fleet_cert/fleet_key/fleet_cas: {exc}", "fleet_cert") from None
        if name != provider_name:
            raise InvalidInput(f"fleet_cert: the certificate names {name!r}, but this provider is {provider_name!r}; "
                               "a provider's fleet identity is its certificate's common name", "fleet_cert")
        return tls


def check_name(sock: ssl.SSLSocket, expected: Optional[str]) -> str:
    """The verified peer's name; raises WrongPeer when it is not ``expected`` (None: any member)."""
    name = common_name(sock.getpeercert())
    if not name or (expected is not None and name != expected):
        raise WrongPeer(f"the peer's fleet certificate names {name!r}, not {expected!r}")
    return name


class _Handler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[FLEET_PEER] = common_name(self.connection.getpeercert())
        environ["wsgi.url_scheme"] = "https"
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.client_address[0], format % args)


class Handshakes:
    """Handshakes under way, at most ``total`` and ``per_source`` from one address (``per_tunnel``
    from one of ``tunnels``, the addresses where the tunnels deliver relayed callers)."""

    def __init__(self, total: int, per_source: int, tunnels: frozenset[str] = frozenset(),
                 per_tunnel: int = HANDSHAKES_PER_TUNNEL) -> None:
        self.total, self.per_source, self.tunnels, self.per_tunnel = total, per_source, tunnels, per_tunnel
        self._lock = threading.Lock()
        self._by_source: dict[str, int] = {}

    def take(self, source: str) -> bool:
        share = self.per_tunnel if source in self.tunnels else self.per_source
        with self._lock:
            if sum(self._by_source.values()) >= self.total or self._by_source.get(source, 0) >= share:
                return False
            self._by_source[source] = self._by_source.get(source, 0) + 1
            return True

    def give(self, source: str) -> None:
        with self._lock:
            left = self._by_source.pop(source) - 1
            if left:
                self._by_source[source] = left


class FleetServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, tunnels: frozenset[str] = frozenset()) -> None:
        self.address_family = family(address[0])
        self.context = context
        self._slots = threading.BoundedSemaphore(CONNECTIONS)
        self._handshakes = Handshakes(HANDSHAKES, HANDSHAKES_PER_SOURCE, tunnels)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._handshakes.take(client_address[0]):
            self.shutdown_request(request)  # one source's connections beyond its share: closed at once
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._handshakes.give(client_address[0])
            raise

    def _handshake(self, request: Any, client_address: Any) -> Optional[ssl.SSLSocket]:
        """The request's TLS socket once a fleet certificate is proved, or None; frees its handshake."""
        request.settimeout(HANDSHAKE_SECONDS)
        try:
            return self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:  # no certificate, an unknown CA, a port scan, silence
            log.info("fleet connection from %s refused: %s", client_address[0], exc)
            return None
        finally:
            self._handshakes.give(client_address[0])

    def finish_request(self, request: Any, client_address: Any) -> None:
        tls = self._handshake(request, client_address)
        if tls is None:
            return
        if not self._slots.acquire(blocking=False):  # as many members as it serves: the next one tries again
            tls.close()
            return
        try:
            tls.settimeout(IO_SECONDS)
            _Handler(tls, client_address, self)  # the server's RequestHandlerClass
            tls.unwrap()  # close_notify: the other end reads a clean end of the answer
        except (OSError, ssl.SSLError):
            pass  # the other end went first
        finally:
            self._slots.release()
            tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.info("fleet connection from %s ended with an error", client_address[0], exc_info=True)


def serve(app: Callable, listen: str, port: int, tls: FleetTLS, tunnels: frozenset[str] = frozenset()) -> FleetServer:
    """Start the fleet listener in a daemon thread; returns the server (``shutdown()`` ends it).
    ``tunnels``: the addresses where this provider's tunnels deliver relayed callers (docs/nat.md)."""
    server = FleetServer((listen, port), tls.server_context(), tunnels)
    server.set_app(app)
    threading.Thread(target=server.serve_forever, name="fleet-listener", daemon=True).start()
    log.info("fleet listener (mutual TLS) on %s:%d", listen, port)
    return server

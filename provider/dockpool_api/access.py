"""Who may call a route, declared where the route is defined and enforced in one plugin.

Every route carries ``access=`` in its Bottle config::

    @app.get("/v1/specs", access="reader")

- ``open``: anyone (the health check, the API description);
- ``reader``: anyone while the operator keeps read routes open, else a client;
- ``client``: a client token; ``admin``: an admin's token;
- ``peer``: writes to the peer table: the fleet's token (what providers send each
  other), a client token, or a caller inside the networks the operator lists for
  P2PRC peers (``peer_sources``, empty by default).
- ``grant``: one step of a move between providers: the secret the other side was
  given for it (moving.py), never a client token.
- ``p2prc``: P2PRC's create and remove: a client token, or, without one, a caller
  inside a network the operator trusts (``p2prc_networks``, empty by default), who
  acts as that network's client with its limits.

The plugin refuses before the route's code runs, so a refused caller never starts
work (an outbound peer check, an engine call). A route without a rule is an error
when the app is built, not a route open by accident.
"""
from __future__ import annotations

import hmac
from typing import Any, Callable, Optional

from bottle import Bottle, Route, request

from dockpool.peers import NetworkRule

from .auth import Authenticator, PlainHttpRefused, Unauthorized, bearer_token, hash_token
from .config import ApiConfig, Client

ACCESS = ("open", "reader", "client", "admin", "peer", "p2prc", "grant")
GRANT_KEY = "dockpool.grant"
_ENVIRON_KEY = "dockpool.client"


def caller_address() -> str:
    # The socket peer; X-Forwarded-For only from the HTTPS front on 127.0.0.1 (waitress's
    # trusted_proxy), never from anyone else, who could forge it to dodge the limiter.
    return request.environ.get("REMOTE_ADDR") or "unknown"


def _trusted_source(address: str, networks: NetworkRule) -> bool:
    try:
        return networks.permits(address)
    except ValueError:  # not an address (a test client, a Unix socket)
        return False


class AccessPlugin:
    """Bottle plugin (API v2): resolves the caller for each route's declared rule."""

    name = "dockpool_access"
    api = 2

    def __init__(self, config: ApiConfig, auth: Authenticator, grants: Any = None) -> None:
        self.config, self.auth, self.grants = config, auth, grants
        self._fleet = hash_token(config.fleet_token) if config.fleet_token else None
        self._peer_sources = NetworkRule(allow=config.peer_sources, deny=())
        self._p2prc = [(NetworkRule(allow=(t.network,), deny=()), t.client) for t in config.p2prc_networks]

    def identify(self, header: Optional[str]) -> Client:
        return self.auth.client(header, caller_address())

    def _resolve(self, access: str) -> Optional[Client]:
        header = request.get_header("Authorization")
        if header and not self.config.plain_http_tokens and request.urlparts.scheme != "https":
            # The token has crossed already; refusing tells the client to move before it sends it again.
            raise PlainHttpRefused(f"this provider takes tokens over HTTPS only: use "
                                   f"https://{self.config.advertise_address}:{self.config.tls_port}", "Authorization")
        if access == "open" or (access == "reader" and self.config.open_read_routes):
            return None
        if access == "grant":
            grant = self.grants.find(bearer_token(header)) if self.grants is not None else None
            if grant is None:
                raise Unauthorized("this route takes the grant its move was given, and it is unknown or expired",
                                   "Authorization")
            request.environ[GRANT_KEY] = grant
            return grant.client
        if access == "peer":
            if not header and _trusted_source(caller_address(), self._peer_sources):
                return None  # a P2PRC peer in a network the operator trusts
            if self._fleet and hmac.compare_digest(hash_token(bearer_token(header)), self._fleet):
                return None  # another provider of the fleet
        if access == "p2prc" and not header:
            for network, client in self._p2prc:  # P2PRC's client sends no token: trusted by where it is
                if _trusted_source(caller_address(), network):
                    return client
        who = self.identify(header)
        if access == "admin" and not who.admin:
            raise Unauthorized("this route is for the provider's administrators", "Authorization")
        return who

    def apply(self, callback: Callable, route: Route) -> Callable:
        access = route.config.get("access")

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request.environ[_ENVIRON_KEY] = self._resolve(access)
            return callback(*args, **kwargs)

        return wrapper


def resolved_client() -> Optional[Client]:
    """The client the plugin resolved, or None (an open route, the fleet, a trusted P2PRC peer)."""
    return request.environ.get(_ENVIRON_KEY)


def current_client() -> Client:
    """The client the plugin resolved for this request (only on client and admin routes)."""
    who = resolved_client()
    if who is None:
        raise Unauthorized("a client token is required: send 'Authorization: Bearer <token>'", "Authorization")
    return who


def check_declared(app: Bottle) -> None:
    """Every route names one of ACCESS; raise naming the first that does not."""
    for route in app.routes:
        if route.config.get("access") not in ACCESS:
            raise ValueError(f"route {route.method} {route.rule} declares no access rule (access=one of {', '.join(ACCESS)})")

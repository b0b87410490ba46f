"""Who may call a route, declared where the route is defined and enforced in one plugin.

Every route carries ``access=`` in its Bottle config::

    @app.get("/v1/specs", access="reader")

- ``open``: anyone (the health check, the API description);
- ``reader``: anyone while the operator keeps read routes open, else a client;
- ``client``: a client token; ``admin``: an admin's token;
- ``operator``: what a drain needs: an admin's token, or the operator's local credential
  (a root-only file on the provider, its hash in the settings) sent from this machine
  itself; no other route takes that credential.
- ``peer``: writes to P2PRC's tier of the peer table (never a member): a client
  token, or a caller inside the networks the operator lists for P2PRC peers
  (``peer_sources``, empty by default).
- ``fleet``: another provider of the fleet, and only on the fleet's listener, where
  mutual TLS proved its certificate (fleet/tls.py): no token opens these routes.
- ``grant``: one step of a move between providers: on the fleet's listener, from the
  provider the step was granted to, with the secret it was given (fleet/moves.py).
- ``metrics``: Prometheus's page: as ``reader`` without a token; with one, the operator's
  scrape credential (``metrics_token_sha256``) or a client token. Only the scrape credential
  and admins are shown the series that name clients (``sees_clients``).

The fleet's listener serves the ``fleet``, ``grant`` and ``open`` routes and refuses
every other: a provider's certificate is no client token.
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

from dockpool.addresses import host_port
from dockpool.networks import NetworkRule
from dockpool.this_machine import is_this_machine

from .auth import Authenticator, PlainHttpRefused, Unauthorized, bearer_token, hash_token
from .config import ApiConfig, Client
from .fleet.moves import Grants
from .fleet.tls import FLEET_PEER

ACCESS = ("open", "reader", "client", "admin", "operator", "peer", "p2prc", "fleet", "grant", "metrics")
FLEET_ROUTES = ("fleet", "grant", "open")
GRANT_KEY = "dockpool.grant"
_ENVIRON_KEY = "dockpool.client"
_SCRAPER_KEY = "dockpool.scraper"


def caller_address() -> str:
    # The socket peer; X-Forwarded-For only from the HTTPS front on 127.0.0.1 (waitress's
    # trusted_proxy), never from anyone else, who could forge it to dodge the limiter.
    return request.environ.get("REMOTE_ADDR") or "unknown"


def _holds(header: Optional[str], expected: str) -> bool:
    """Whether the bearer token is the operator's credential hashed as ``expected`` (none when unset)."""
    token = bearer_token(header)
    return bool(expected and token) and hmac.compare_digest(hash_token(token), expected)


def _trusted_source(address: str, networks: NetworkRule) -> bool:
    try:
        return networks.permits(address)
    except ValueError:  # not an address (a test client, a Unix socket)
        return False


class AccessPlugin:
    """Bottle plugin (API v2): resolves the caller for each route's declared rule."""

    name = "dockpool_access"
    api = 2

    def __init__(self, config: ApiConfig, auth: Authenticator, grants: Optional[Grants],
                 public_address: str) -> None:
        self.config, self.auth, self.grants = config, auth, grants
        self._https = f"https://{host_port(public_address, config.tls_port)}"
        self._peer_sources = NetworkRule(allow=config.peer_sources, deny=())
        self._p2prc = [(NetworkRule(allow=(t.network,), deny=()), t.client) for t in config.p2prc_networks]

    def identify(self, header: Optional[str]) -> Client:
        return self.auth.client(header, caller_address())

    def _resolve(self, access: str) -> Optional[Client]:
        peer = fleet_peer()
        if peer and access not in FLEET_ROUTES:
            raise Unauthorized("the fleet's listener serves only the routes between providers; "
                               "clients use the API's own port", "Authorization")
        if access in ("fleet", "grant") and not peer:
            raise Unauthorized("this route is between providers of the fleet: only on the fleet's listener, "
                               "with a certificate from the fleet's CA", "Authorization")
        if access == "fleet":
            return None
        header = request.get_header("Authorization")
        if header and not self.config.plain_http_tokens and request.urlparts.scheme != "https":
            # The token has crossed already; refusing tells the client to move before it sends it again.
            raise PlainHttpRefused("this provider takes tokens over HTTPS only: use "
                                   + self._https, "Authorization")
        if access == "metrics":
            return self._scraper(header)
        if access == "open" or (access == "reader" and self.config.open_read_routes):
            return None
        if access == "grant":
            grant = self.grants.find(bearer_token(header)) if self.grants is not None else None
            if grant is None or grant.peer != peer:
                raise Unauthorized("this route takes the grant its move was given, and it is unknown or expired",
                                   "Authorization")
            request.environ[GRANT_KEY] = grant
            return grant.client
        if access == "peer":
            if not header and _trusted_source(caller_address(), self._peer_sources):
                return None  # a P2PRC peer in a network the operator trusts
        if access == "p2prc" and not header:
            for network, client in self._p2prc:  # P2PRC's client sends no token: trusted by where it is
                if _trusted_source(caller_address(), network):
                    return client
        if access == "operator" and self._operator(header):
            return None
        who = self.identify(header)
        if access in ("admin", "operator") and not who.admin:
            raise Unauthorized("this route is for the provider's administrators", "Authorization")
        return who

    def _operator(self, header: Optional[str]) -> bool:
        """The operator's local credential; refused (never passed on as a client token) from elsewhere."""
        if not _holds(header, self.config.operator_token_sha256):
            return False
        if not is_this_machine(caller_address()):
            raise Unauthorized("the operator's local credential is taken only from this machine itself "
                               "(the drain play calls the API on loopback)", "Authorization")
        return True

    def _scraper(self, header: Optional[str]) -> Optional[Client]:
        """/metrics: the scrape credential, else a client's token (a wrong one is 401, counted
        against its address like any), else nobody where read routes are open."""
        if _holds(header, self.config.metrics_token_sha256):
            request.environ[_SCRAPER_KEY] = True
            return None
        if not header and self.config.open_read_routes:
            return None
        return self.identify(header)

    def apply(self, callback: Callable, route: Route) -> Callable:
        access = route.config.get("access")

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request.environ[_ENVIRON_KEY] = self._resolve(access)
            return callback(*args, **kwargs)

        return wrapper


def fleet_peer() -> str:
    """The calling provider's name, proven by its certificate on the fleet's listener ('' elsewhere)."""
    return request.environ.get(FLEET_PEER) or ""


def resolved_client() -> Optional[Client]:
    """The client the plugin resolved, or None (an open route, a provider of the fleet, a trusted P2PRC peer)."""
    return request.environ.get(_ENVIRON_KEY)


def sees_clients() -> bool:
    """Whether this caller is shown what names clients: the scrape credential or an admin."""
    who = resolved_client()
    return bool(request.environ.get(_SCRAPER_KEY)) or bool(who and who.admin)


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

"""Bearer tokens: stored as SHA-256 hashes, compared in constant time. An address
that keeps sending wrong tokens is told to wait (429) before it is served more
guesses; a right token is always served, so one guesser behind a NAT or a proxy
cannot lock out the clients who share its address."""
from __future__ import annotations

import hashlib
import hmac
from typing import Optional

from dockpool.errors import DockpoolError

from .config import Client
from .windows import SlidingWindows


class Unauthorized(DockpoolError):
    http_status = 401


class PlainHttpRefused(DockpoolError):
    http_status = 403


class TooManyFailures(DockpoolError):
    http_status = 429


def hash_token(token: str) -> str:
    """Tokens are long random strings, so one SHA-256 is enough (no password stretching)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(header: Optional[str]) -> str:
    """The token of an ``Authorization: Bearer`` header; empty when there is none."""
    scheme, _, token = (header or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class FailureLimiter:
    """At most ``limit`` failed logins per address within ``window`` seconds."""

    def __init__(self, limit: int = 10, window: float = 60.0, max_addresses: int = 10000) -> None:
        self.windows = SlidingWindows(limit, window, max_addresses)

    def check(self, address: str) -> None:
        with self.windows.lock:
            wait = self.windows.wait(address)
        if wait:
            seconds = int(wait) + 1
            raise TooManyFailures(f"too many failed logins from {address}; try again in {seconds} s", "Authorization",
                                  {"retry_after": seconds})

    def failed(self, address: str) -> None:
        with self.windows.lock:
            self.windows.add(address)


class Authenticator:
    def __init__(self, clients: tuple[Client, ...], limiter: Optional[FailureLimiter] = None) -> None:
        self.clients = clients
        self.limiter = limiter or FailureLimiter()

    def client(self, header: Optional[str], address: str) -> Client:
        """The client a ``Bearer`` header belongs to; 401 for a missing or wrong token, and 429
        instead of 401 once the address sent too many wrong ones. A right token always passes."""
        token = bearer_token(header)
        if not token:
            raise Unauthorized("a client token is required: send 'Authorization: Bearer <token>'", "Authorization")
        digest = hash_token(token)
        found = None
        for client in self.clients:  # every hash compared, in constant time, whatever matches
            if hmac.compare_digest(client.token_sha256, digest):
                found = client
        if found is None:
            self.limiter.check(address)
            self.limiter.failed(address)
            raise Unauthorized("the token is not valid on this provider", "Authorization")
        return found

"""Trust in a provider's certificate: the system's CAs, or a SHA-256 fingerprint the
client pinned at login (like ssh's known_hosts) for a provider with a self-signed one."""
from __future__ import annotations

import hashlib
import socket
import ssl
from typing import Any, Optional
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter

from .errors import AUTH, UNAVAILABLE, CliError


def normalise_fingerprint(text: str) -> str:
    """``AB:CD:...``, ``abcd...`` or ``SHA256:AB:CD...`` as 64 lower-case hex digits."""
    digits = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if len(digits) != 64 or any(ch not in "0123456789abcdef" for ch in digits):
        raise CliError(f"--fingerprint {text!r} is not a SHA-256 fingerprint (64 hex digits, colons allowed)", 2)
    return digits


def shown(fingerprint: str) -> str:
    """As openssl and browsers show it: AB:CD:..."""
    return ":".join(fingerprint[i:i + 2] for i in range(0, 64, 2)).upper()


def served_fingerprint(url: str, timeout: float = 10.0) -> str:
    """The SHA-256 of the certificate the provider serves, read without trusting it."""
    parts = urlsplit(url)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only read it: the caller decides whether to trust it
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=parts.hostname) as tls:
                der = tls.getpeercert(binary_form=True)
    except OSError as exc:
        raise CliError(f"{url} cannot be reached over TLS: {exc}", UNAVAILABLE) from None
    if not der:
        raise CliError(f"{url} sent no certificate", UNAVAILABLE)
    return hashlib.sha256(der).hexdigest()


class PinnedAdapter(HTTPAdapter):
    """HTTPS that trusts one certificate, named by its SHA-256, whatever signed it.
    urllib3 compares the fingerprint after the handshake and before any byte of the
    request (the token) is sent."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        super().__init__()

    # CA checks are off on purpose, whatever REQUESTS_CA_BUNDLE says: the fingerprint is the check.
    def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
        host, pool = super().build_connection_pool_key_attributes(request, False, cert)
        pool.update(assert_fingerprint=self.fingerprint)
        return host, pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, False, cert)


def changed_message(url: str, pinned: str, now: Optional[str]) -> str:
    return (f"the certificate of {url} is not the one you trusted at login: pinned SHA-256 {shown(pinned)}"
            + (f", now {shown(now)}" if now else "") + ". If its operator replaced it, check the new fingerprint "
            f"with them and run `dockpool login {url} --fingerprint NEW`; otherwise someone may be between you "
            "and the provider: do not send your token there")


def mismatch(url: str, pinned: str) -> CliError:
    try:
        now: Optional[str] = served_fingerprint(url)
    except CliError:
        now = None
    return CliError(changed_message(url, pinned, now), AUTH)

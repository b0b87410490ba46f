"""`dockpool login`: prove a token against a provider and keep it, trusting the provider's
certificate the way ssh trusts a host key (a CA this machine trusts, else a pinned fingerprint)."""
from __future__ import annotations

import ipaddress
from typing import Callable, Optional
from urllib.parse import urlsplit

from . import tls
from .api import Provider
from .errors import AUTH, CliError
from .render import out
from .settings import Settings, normalise_url


def login(settings: Settings, url: str, token: str, fingerprint: Optional[str] = None,
          insecure_http: bool = False, ask: Optional[Callable[[str], bool]] = None) -> int:
    url = normalise_url(url)
    if not token:
        raise CliError("a token is needed: --token T, $DOCKPOOL_TOKEN, or type it when asked", AUTH)
    if url.startswith("http://") and not on_this_machine(url) and not insecure_http:
        raise CliError(f"{url} is plain HTTP to another machine: your token would cross the network readable. "
                       "Use the provider's https:// address (port 8443 by default), or --insecure-http", AUTH)
    pin = trust(settings, url, fingerprint, ask) if url.startswith("https://") else None
    count = len(Provider(url, token, pin).instances())  # proves the token before it is kept
    settings.providers[url] = {"token": token, **({"fingerprint": pin} if pin else {})}
    settings.default = url
    settings.save()
    trusted = f" Certificate pinned: SHA-256 {tls.shown(pin)}." if pin else ""
    out.print(f"Logged in to [bold]{url}[/] ({count} instance{'s' if count != 1 else ''} of yours there). "
              f"Token kept in {settings.path} (mode 0600).{trusted}")
    return 0


def on_this_machine(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def trust(settings: Settings, url: str, given: Optional[str], ask: Optional[Callable[[str], bool]]) -> Optional[str]:
    """The fingerprint to pin for ``url``, or None when a CA this machine trusts signed its certificate.
    Like ssh's known_hosts: a new certificate is shown and confirmed once, then only it is accepted."""
    if given:
        wanted = tls.normalise_fingerprint(given)
        served = tls.served_fingerprint(url)
        if served != wanted:
            raise CliError(f"{url} serves a certificate with SHA-256 {tls.shown(served)}, not the "
                           f"{tls.shown(wanted)} you gave: do not log in there until the operator explains", AUTH)
        return wanted
    pinned = settings.fingerprint(url)
    if pinned:
        served = tls.served_fingerprint(url)
        if served != pinned:
            raise CliError(tls.changed_message(url, pinned, served), AUTH)
        return pinned
    try:
        Provider(url).health(timeout=10)
        return None  # signed by a CA this machine trusts
    except CliError as exc:
        if exc.code != AUTH:
            raise
    served = tls.served_fingerprint(url)
    question = (f"The certificate of {url} is not signed by a CA this machine trusts (a self-signed provider).\n"
                f"Its SHA-256 fingerprint is {tls.shown(served)}\n"
                "Compare it with the one the provider's operator gave you. Trust it from now on?")
    if ask is None:
        raise CliError(f"{question.splitlines()[0]} Its SHA-256 fingerprint is {tls.shown(served)}: if the operator "
                       f"confirms it, run `dockpool login {url} --fingerprint {tls.shown(served)}`", AUTH)
    if not ask(question):
        raise CliError(f"{url}: certificate not trusted; nothing was kept", AUTH)
    return served

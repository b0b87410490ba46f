"""An instance's replica on another member of the fleet: `replicate`, `replicas`, and `restore`
once the instance's provider is gone."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from . import render
from .errors import NOT_FOUND, UNAVAILABLE, CliError
from .keys import client_key
from .records import locate, relocate
from .render import err, out
from .settings import Settings
from .shapes import HeldReplica
from .sshcheck import checked


def replicate(settings: Settings, name: str, url: Optional[str], as_json: bool) -> int:
    provider, ref = locate(settings, name, url)
    render.replicas(name, [provider.replicate(ref)], as_json)
    return 0


def replicas(settings: Settings, name: str, url: Optional[str], as_json: bool) -> int:
    provider, ref = locate(settings, name, url)
    render.replicas(name, provider.replicas(ref), as_json)
    return 0


def newest_replica(settings: Settings, name: str, ran_on: Optional[str]) -> tuple[str, HeldReplica]:
    """The provider logged in to that holds the newest replica of ``name`` not restored yet, and
    that replica. The provider that ran it (``ran_on``) is not asked: it may be down."""
    held = []
    for url in sorted(u for u in settings.providers if u != ran_on):
        try:
            held += [(r["refreshed"], url, r) for r in settings.connect(url, timeout=10).held_replicas()
                     if r["instance"] == name and not r["restored"]]
        except CliError as exc:
            render.warn(f"{url} did not answer ({exc.message})")
    if not held:
        raise CliError(f"no provider you are logged in to holds a replica of {name} (`dockpool replicas {name}` names "
                       "its holder: log in to it)", NOT_FOUND)
    _refreshed, url, replica = max(held, key=lambda h: h[0])  # the newest, should two hold one
    return url, replica


def restore(settings: Settings, name: str, key: Optional[str], wait: float, no_check: bool, as_json: bool) -> int:
    """Start ``name`` from its replica on the member that holds it, once its provider is gone from
    the fleet; its record and SSH entries follow it there, its aliases with them."""
    known = settings.instances.get(name) or {}
    url, replica = newest_replica(settings, name, known.get("provider"))
    key_path = Path(known.get("key") or client_key(settings, key)).expanduser()
    with err.status(f"Restoring {name} on {url} from its replica of {replica['refreshed']}…"):
        view = settings.connect(url).restore(replica["provider"], name)
    config = relocate(settings, name, url, view, key_path)
    problem = checked(settings, view["name"], no_check, wait)
    if as_json:
        render.instance_json(view, config, not no_check and problem is None)
    else:
        out.print(f"[green]Restored[/] {name} on {url} as [bold]{view['name']}[/] from its replica of "
                  f"{replica['refreshed']}")
        out.print(f"    ssh -F {config} {view['name']}")
    if problem:
        render.ssh_failed("was restored", problem)
        return UNAVAILABLE
    return 0

"""Moving an instance to another provider: `dockpool move`, and following one a drain moved.
Either way the client's record and SSH entries go with it (records.relocate)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

from dockpool.client_requests import move_request
from dockpool.units import human_size

from . import render
from .api import Provider
from .errors import AUTH, NOT_FOUND, REFUSED, UNAVAILABLE, CliError
from .fleet import provider_named
from .keys import client_key, public_key
from .records import locate, relocate
from .render import err, out
from .settings import Settings, normalise_url
from .shapes import MoveOffer, MoveResult
from .sshcheck import checked


def run_move(source: Provider, target: Provider, ref: str, offer: MoveOffer, label: str) -> MoveResult:
    """Ask the source to move ``ref`` with the target's ``offer``, showing the target's progress;
    a failed move gives the target's grant back."""
    answer: list[MoveResult] = []
    failure: list[CliError] = []

    def run() -> None:
        try:
            answer.append(source.send_move(ref, offer))
        except CliError as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    with err.status(f"{label}…") as status:
        while worker.is_alive():  # bounded by the source's answer (its own timeout)
            worker.join(0.5)
            try:
                status.update(f"{label}: {human_size(target.move_progress(offer['id'])['received'])} received")
            except CliError:
                pass
    if failure:
        try:
            target.cancel_move(offer["id"])
        except CliError:
            pass  # it expires by itself
        raise failure[0]
    return answer[0]


def move(settings: Settings, name: str, to: str, key: Optional[str], wait: float, no_check: bool) -> int:
    """Move an instance to another provider you are logged in to: asked of the target first (does it
    fit? a grant), then of the source, which streams it there and removes its own only after the
    target's instance answers SSH. Progress is read from the target while the source works."""
    target_url = normalise_url(to)
    if settings.token(target_url) is None:
        raise CliError(f"not logged in to {target_url}: run `dockpool login {target_url}` first", AUTH)
    source, ref = locate(settings, name, None)
    if source.url == target_url:
        raise CliError(f"{name} is on {target_url} already", REFUSED)
    view = source.instance(ref)
    known = settings.instances.get(view["name"]) or {}
    key_path = Path(key or known.get("key") or client_key(settings, None)).expanduser()
    body = move_request(view, public_key(key_path))
    body["source"] = source.fleet_name()
    target = settings.connect(target_url)
    offer = target.offer_move(body)
    moved = run_move(source, target, ref, offer, f"Moving {view['name']} to {target_url}")["instance"]
    config = relocate(settings, view["name"], target_url, moved, key_path, keep_name=False)
    problem = checked(settings, moved["name"], no_check, wait)
    out.print(f"[green]Moved[/] {view['name']} to [bold]{moved['name']}[/] on {target_url}")
    out.print(f"    ssh -F {config} {moved['name']}")
    if problem:
        render.ssh_failed("moved", problem)
        return UNAVAILABLE
    return 0


def moved_to(settings: Settings, name: str, provider: str) -> Optional[dict[str, object]]:
    """Where a drain moved ``name`` (its provider's 404 says, in ``detail.moved_to``), or None when
    it is there, gone, or its provider cannot be reached: then nothing changes."""
    try:
        settings.connect(provider, timeout=10).instance(name)
        return None
    except CliError as exc:
        moved = exc.detail.get("moved_to") if exc.code == NOT_FOUND and isinstance(exc.detail, dict) else None
        return moved if isinstance(moved, dict) else None


def follow(settings: Settings, name: str) -> Optional[str]:
    """When a drain moved ``name`` (one `up` made), its record and SSH entries follow it to the new
    provider; the old name stays an SSH alias of the new place. Its new name, or None if it did not move."""
    known = settings.instances.get(name)
    if not known:
        return None
    moved = moved_to(settings, name, known["provider"])
    if moved is None:
        return None
    url = provider_named(settings, str(moved.get("provider")))
    if url is None:
        raise CliError(f"{name} was moved to {moved.get('provider')} ({moved.get('address')}) as {moved.get('name')} when "
                       "its provider was drained: log in to that provider (`dockpool login URL`) to reach it", NOT_FOUND)
    view = settings.connect(url).instance(str(moved["name"]))
    relocate(settings, name, url, view, Path(known["key"]))
    err.print(f"{name} was moved to {view['name']} on {url} (its provider was drained); its SSH entries follow it",
              highlight=False)
    return view["name"]

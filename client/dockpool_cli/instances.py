"""The client's instances on one provider: `up`, `ls`, `stop`, `start`, `rm` and `ssh`."""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional, Union

from dockpool.errors import InvalidInput
from dockpool.spec import CLIENT_FIELDS
from dockpool.units import parse_size

from . import render, sshconfig
from .errors import AUTH, NOT_FOUND, REFUSED, UNAVAILABLE, CliError
from .fleet import ranked_providers
from .keys import client_key, public_key
from .moves import follow
from .records import locate
from .render import err, out
from .settings import Settings
from .shapes import InstanceView
from .sshcheck import checked

DESKTOP_IMAGE = "desktop"
FILLED_BY_CLI = ("public_key",)  # create-request fields `up` fills itself (the key from --key), not flags


def create_request(args: Any, key: Path) -> dict[str, Any]:
    """`up`'s flags as the create request: each field a flag gave (spec.py declares them), the key."""
    body: dict[str, Any] = {"public_key": public_key(key)}
    body.update({name: value for name in CLIENT_FIELDS if (value := getattr(args, name, None)) not in (None, False)})
    if args.desktop:
        body["image"] = DESKTOP_IMAGE
    return body


def candidates(settings: Settings, args: Any) -> list[str]:
    """Where `up` may create: the nearest providers with room (--best), else the one named or the default."""
    if args.desktop and args.image:
        raise CliError("--desktop and --image name two images; give one", REFUSED)
    wanted = ("memory_reservation", args.memory_reservation) if args.memory_reservation else ("memory", args.memory)
    try:
        memory = parse_size(wanted[1], wanted[0])  # what must be free where it goes
    except InvalidInput as exc:
        raise CliError(exc.message, REFUSED) from None
    urls = ranked_providers(settings, memory, args.cpus, args.gpu) if args.best else [settings.provider(args.provider)]
    for url in urls:
        if settings.token(url) is None:
            raise CliError(f"not logged in to {url}: run `dockpool login {url}` first", AUTH)
    return urls


def up(settings: Settings, args: Any) -> int:
    urls = candidates(settings, args)
    key = client_key(settings, args.key)
    body = create_request(args, key)
    started = time.monotonic()
    with err.status("Creating an instance (the provider answers once its SSH does)…") as status:
        url, view = create_on_first(settings, urls, body, status)
        settings.instances[view["name"]] = {"provider": url, "id": view["id"], "key": str(key)}
        settings.save()
        try:
            config = sshconfig.add(settings.directory, view["name"], view["ssh"], key)
        except (KeyError, TypeError, ValueError) as exc:
            raise CliError(f"{view['name']} was made, but the provider's answer cannot go into an SSH config ({exc}); "
                           f"`dockpool rm {view['name']}` removes it", UNAVAILABLE) from None
        if not args.no_check:
            status.update(f"Logging in to {view['name']} through {url}'s jump host…")
        problem = checked(settings, view["name"], args.no_check, args.wait)
    if args.json:
        render.instance_json(view, config, not args.no_check and problem is None)
    else:
        render.ready(view, url, config, time.monotonic() - started)
    if problem:
        render.ssh_failed("is up", problem)
        return UNAVAILABLE
    return 0


def create_on_first(settings: Settings, candidates: list[str], body: dict[str, Any], status: Any) -> tuple[str, InstanceView]:
    """Create on the first candidate that has room: a 409 (no free port or core there) moves on
    to the next; any other refusal is the answer."""
    for url in candidates:
        status.update(f"Creating an instance on {url} (the provider answers once its SSH does)…")
        try:
            return url, settings.connect(url).create(body)
        except CliError as exc:
            if exc.status != 409 or url == candidates[-1]:
                raise
            err.print(f"[yellow]{url} has no room ({exc.message}); trying the next nearest[/]", highlight=False)
    raise CliError("no provider to create on", UNAVAILABLE)  # not reached: candidates is never empty


def listed_everywhere(settings: Settings, urls: list[str]) -> list[dict[str, Any]]:
    """The client's instances on each of ``urls`` (asked at once), each with its provider's URL."""
    def listed(each: str) -> Union[list[InstanceView], CliError]:
        try:
            return settings.connect(each, timeout=10).instances()
        except CliError as exc:
            return exc

    rows: list[dict[str, Any]] = []
    failures, seen = [], set()
    with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        for each, answer in zip(urls, pool.map(listed, urls)):
            if isinstance(answer, CliError):
                failures.append(answer)
                render.warn(answer.message)
                continue
            # Providers sharing one engine (a local fleet) see the same containers: each listed once.
            rows += [{**v, "provider": each} for v in answer if v["id"] not in seen]
            seen.update(v["id"] for v in answer)
    if failures and len(failures) == len(urls):
        raise CliError("no provider answered", failures[0].code)
    return rows


def ls(settings: Settings, url: Optional[str], as_json: bool) -> int:
    """The client's instances on every provider logged in to (asked at once), or on ``url``."""
    urls = [settings.provider(url)] if url else sorted(settings.providers)
    if not urls:
        raise CliError("not logged in to any provider: run `dockpool login URL` first", AUTH)
    rows = listed_everywhere(settings, urls)
    listed_names = {r["name"] for r in rows}
    for name in [n for n, v in settings.instances.items() if v.get("provider") in urls and n not in listed_names]:
        try:
            follow(settings, name)  # a drain moved it: its record and SSH entries follow
        except CliError as exc:
            render.warn(exc.message)
    if as_json:
        render.print_json(rows)
    else:
        render.instances_table(rows, set(settings.instances))
    return 0


def act(settings: Settings, verb: str, name: str, url: Optional[str]) -> int:
    provider, ref = locate(settings, name, url)
    view = provider.action(ref, verb)
    out.print(f"{view['name']}: {view['state']}")
    return 0


def rm(settings: Settings, name: str, url: Optional[str]) -> int:
    provider, ref = locate(settings, name, url)
    try:
        provider.remove(ref)
    except CliError as exc:
        if exc.code != NOT_FOUND:
            raise
        err.print(f"[yellow]{name} was already gone from {provider.url}[/]")
    gone = settings.instances.pop(name, None) or {}
    settings.save()
    for host in (name, *gone.get("aliases", [])):
        sshconfig.remove(settings.directory, host)
    out.print(f"Removed {name} and its SSH entry.")
    return 0


def ssh(settings: Settings, name: str, command: list[str]) -> int:
    follow(settings, name)  # a drained provider's instance: the entry is rewritten to where it went
    if name not in sshconfig.names(settings.directory):
        raise CliError(f"no SSH entry for {name!r}: `dockpool ls` lists instances, `dockpool up` makes one", NOT_FOUND)
    argv = ["ssh", "-F", str(sshconfig.ssh_config_path(settings.directory)), name, *command]
    os.execvp("ssh", argv)  # an argument list: the name was checked against our own entries
    return 0  # not reached

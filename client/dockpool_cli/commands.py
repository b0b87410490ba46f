"""What each `dockpool` subcommand does. Output goes through rich; --json prints data instead."""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote, urlsplit

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dockpool.addresses import host_port
from dockpool.errors import InvalidInput
from dockpool.moves import move_request
from dockpool.spec import CLIENT_FIELDS
from dockpool.units import human_size, parse_size

from . import sshconfig, tls
from .api import Provider
from .errors import AUTH, NOT_FOUND, REFUSED, UNAVAILABLE, CliError
from .settings import Settings, normalise_url

out = Console(emoji=False)  # a fingerprint such as 05:CD:DD holds ":CD:", an emoji code
err = Console(stderr=True, emoji=False)
DESKTOP_IMAGE = "desktop"
FILLED_BY_CLI = ("public_key",)  # create-request fields `up` fills itself (the key from --key), not flags


def plain(value: Any) -> Text:
    """What a provider sent, shown as text: never read as rich markup (a peer named
    "[link=...]" stays those characters) and without control characters."""
    return Text("".join(ch for ch in str(value) if ch.isprintable()))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _provider(settings: Settings, url: Optional[str]) -> Provider:
    return settings.connect(settings.provider(url))


# ---- login and providers ---------------------------------------------------------------------


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
        Provider(url).call("GET", "/healthz", timeout=10)
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


def peer_url(peer: dict[str, Any]) -> str:
    return f"http://{host_port(peer.get('IPV4') or peer.get('IPV6') or '', peer.get('ServerPort'))}"


def probe(provider: Provider) -> dict[str, Any]:
    """Latency measured from here, and the provider's hardware and free capacity."""
    url, token = provider.url, provider.session.headers.get("Authorization")
    try:
        latency, health = provider.latency()
        specs = provider.specs()
        return {
            "url": url, "reachable": True, "latency_ms": round(latency * 1000, 2), "draining": health.get("draining") is True,
            "hostname": specs["hostname"], "cpu": specs["cpu"]["model"], "cores": specs["cpu"]["logical_cpus"],
            "memory_total": specs["memory"]["total"], "memory_available": specs["memory"]["available"],
            "disk_free": specs["disk"]["free"], "gpus": [g["name"] for g in specs["gpus"]],
            "logged_in": token is not None,
        }
    except CliError as exc:
        return {"url": url, "reachable": False, "error": exc.message}
    except (KeyError, TypeError, AttributeError):  # a peer is anyone's: its answer may be anything
        return {"url": url, "reachable": False, "error": "its /v1/specs is not a dockpool provider's"}


def probe_all(settings: Settings, urls: list[str]) -> list[dict[str, Any]]:
    """Every provider probed at once (5 s per call at most), so a dead one costs one timeout."""
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(urls)))) as pool:
        return list(pool.map(lambda u: probe(settings.connect(u, timeout=5)), urls))


def fleet_tables(settings: Settings, urls: list[str]) -> tuple[dict[str, str], list[CliError]]:
    """The peer tables of ``urls`` (asked at once): every provider they know, URL -> name."""
    def table(url: str) -> Any:
        try:
            return settings.connect(url, timeout=5).peers()
        except CliError as exc:
            return exc

    known: dict[str, str] = {}
    failures = []
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(urls)))) as pool:
        for url, answer in zip(urls, pool.map(table, urls)):
            if isinstance(answer, CliError):
                failures.append(answer)
                continue
            entries = [p for p in answer if isinstance(p, dict)]
            for peer in entries:
                known.setdefault(peer_url(peer), str(peer.get("Name", "")))
            if entries:  # the first entry is the provider itself: listed once, by the URL we log in with
                if peer_url(entries[0]) != url:
                    known.pop(peer_url(entries[0]), None)
                known[url] = str(entries[0].get("Name", ""))
    return known, failures


def providers(settings: Settings, url: Optional[str], as_json: bool) -> int:
    """Every provider the fleet knows: from the tables of the providers logged in to (or ``url``'s)."""
    asked = [settings.provider(url)] if url else sorted(settings.providers)
    if not asked:
        raise CliError("not logged in to any provider: run `dockpool login URL` first", AUTH)
    known, failures = fleet_tables(settings, asked)
    for exc in failures:
        err.print(f"[yellow]{exc.message}[/]", highlight=False)
    if len(failures) == len(asked):
        raise CliError("no provider answered with its peer table", failures[0].code)
    found = probe_all(settings, sorted(known))
    for row in found:
        row["name"] = known[row["url"]]
    found.sort(key=lambda r: (not r["reachable"], r.get("latency_ms", 0.0)))
    if as_json:
        _print_json(found)
        return 0
    view = Table(title=f"Providers known to {', '.join(asked)}")
    for column in ("name", "url", "latency", "CPU", "cores", "RAM free / total", "disk free", "GPU", "logged in"):
        view.add_column(column)
    for row in found:
        if not row["reachable"]:
            view.add_row(plain(row["name"]), plain(row["url"]), Text("unreachable", style="red"), "", "", "", "", "", "")
            continue
        name = Text(row["name"]) + (Text(" (draining)", style="yellow") if row["draining"] else Text(""))
        view.add_row(name, plain(row["url"]), f"{row['latency_ms']:.1f} ms", plain(row["cpu"]),
                     plain(row["cores"]), f"{human_size(row['memory_available'])} / {human_size(row['memory_total'])}",
                     human_size(row["disk_free"]), plain(", ".join(row["gpus"]) or "-"),
                     "yes" if row["url"] in settings.providers else "")
    out.print(view)
    return 0


def fits(row: dict[str, Any], memory: Optional[int], cpus: Optional[int], gpu: bool) -> bool:
    return (row["reachable"] and not row["draining"] and row["memory_available"] >= (memory or 0)
            and row["cores"] >= (cpus or 0) and (bool(row["gpus"]) or not gpu))


def ranked_providers(settings: Settings, memory: Optional[int], cpus: Optional[int], gpu: bool) -> list[str]:
    """The providers logged in to where the request fits (free memory, cores, a GPU if asked), nearest first.
    Tokens go only to providers the client logged in to, never to a URL read from a peer table."""
    if not settings.providers:
        raise CliError("not logged in to any provider: run `dockpool login URL` first", AUTH)
    found = probe_all(settings, sorted(settings.providers))
    fit = sorted((r for r in found if fits(r, memory, cpus, gpu)), key=lambda r: r["latency_ms"])
    if not fit:
        why = {True: "draining: it takes no new instance", False: "not enough free memory or cores, or no GPU"}
        reasons = "; ".join(f"{r['url']}: {r.get('error') or why[r['draining']]}" for r in found)
        raise CliError(f"no provider you are logged in to can take this instance ({reasons})", UNAVAILABLE)
    return [r["url"] for r in fit]


# ---- instances -------------------------------------------------------------------------------


def client_key(settings: Settings, given: Optional[str]) -> Path:
    """The private key to log in with: --key, else ~/.ssh/id_ed25519, else one made for dockpool."""
    if given:
        key = Path(given).expanduser()
    else:
        own = Path.home() / ".ssh" / "id_ed25519"
        key = own if own.exists() else settings.directory / "id_ed25519"
        if not key.exists():
            key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dockpool", "-f", str(key)],
                           check=True, capture_output=True, timeout=60)
            err.print(f"Made an SSH key for dockpool: {key}")
    if not key.with_name(key.name + ".pub").exists():
        raise CliError(f"{key}.pub does not exist: --key names a private key whose .pub sits beside it", REFUSED)
    return key


def ssh_check(settings: Settings, name: str, deadline: float) -> Optional[str]:
    """Log in through the jump host with the written config until it works; None, or the last error."""
    last = "no attempt"
    config = sshconfig.ssh_config_path(settings.directory)
    while time.monotonic() < deadline:  # bounded by the caller's deadline
        done = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", name, "true"],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
        if done.returncode == 0:
            return None
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"ssh exited {done.returncode}"
        if "Permission denied" in last:
            return last  # retrying will not change the key
        time.sleep(0.5)
    return last


def create_request(args: Any, key: Path) -> dict[str, Any]:
    """`up`'s flags as the create request: each field a flag gave (spec.py declares them), the key."""
    body: dict[str, Any] = {"public_key": key.with_name(key.name + ".pub").read_text(encoding="utf-8").strip()}
    body.update({name: value for name in CLIENT_FIELDS if (value := getattr(args, name, None)) not in (None, False)})
    if args.desktop:
        body["image"] = DESKTOP_IMAGE
    return body


def up(settings: Settings, args: Any) -> int:
    if args.desktop and args.image:
        raise CliError("--desktop and --image name two images; give one", REFUSED)
    wanted = ("memory_reservation", args.memory_reservation) if args.memory_reservation else ("memory", args.memory)
    try:
        memory = parse_size(wanted[1], wanted[0])  # what must be free where it goes
    except InvalidInput as exc:
        raise CliError(exc.message, REFUSED) from None
    candidates = ranked_providers(settings, memory, args.cpus, args.gpu) if args.best else [settings.provider(args.provider)]
    for url in candidates:
        if settings.token(url) is None:
            raise CliError(f"not logged in to {url}: run `dockpool login {url}` first", AUTH)
    key = client_key(settings, args.key)
    body = create_request(args, key)
    started = time.monotonic()
    quiet = args.json
    with err.status("Creating an instance (the provider answers once its SSH does)…") as status:
        url, view = create_on_first(settings, candidates, body, status)
        settings.instances[view["name"]] = {"provider": url, "id": view["id"], "key": str(key)}
        settings.save()
        try:
            config = sshconfig.add(settings.directory, view["name"], view["ssh"], key)
        except (KeyError, TypeError, ValueError) as exc:
            raise CliError(f"{view['name']} was made, but the provider's answer cannot go into an SSH config ({exc}); "
                           f"`dockpool rm {view['name']}` removes it", UNAVAILABLE) from None
        problem = None
        if not args.no_check:
            status.update(f"Logging in to {view['name']} through {url}'s jump host…")
            problem = ssh_check(settings, view["name"], time.monotonic() + args.wait)
    seconds = time.monotonic() - started
    if quiet:
        _print_json({**view, "ssh_config": str(config), "ssh_checked": not args.no_check and problem is None})
    else:
        out.print(f"[green]Ready[/] in {seconds:.1f} s: [bold]{view['name']}[/] on {url}")
        out.print(f"    ssh -F {config} {view['name']}   (or `dockpool ssh {view['name']}`)")
        out.print(f"    Add `Include {config}` to ~/.ssh/config to type just `ssh {view['name']}`.")
        _print_desktop(view.get("desktop"))
    if problem:
        err.print(f"[yellow]The instance is up but SSH through the jump host failed:[/] {problem}")
        return UNAVAILABLE
    return 0


def create_on_first(settings: Settings, candidates: list[str], body: dict[str, Any], status: Any) -> tuple[str, dict[str, Any]]:
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


def _print_desktop(desktop: Optional[dict[str, Any]]) -> None:
    if not desktop:
        return
    out.print(f"    Desktop in the browser: {desktop['novnc_url']}")
    if desktop.get("vnc_password"):
        out.print(f"    VNC password (shown this once): [bold]{desktop['vnc_password']}[/]")


def _locate(settings: Settings, name: str, url: Optional[str]) -> tuple[Provider, str]:
    """The provider holding ``name``: --provider, else where `up` made it, else the default."""
    known = settings.instances.get(name)
    chosen = settings.provider(url or (known or {}).get("provider"))
    return settings.connect(chosen), name


def ls(settings: Settings, url: Optional[str], as_json: bool) -> int:
    """The client's instances on every provider logged in to (asked at once), or on ``url``."""
    urls = [settings.provider(url)] if url else sorted(settings.providers)
    if not urls:
        raise CliError("not logged in to any provider: run `dockpool login URL` first", AUTH)

    def listed(each: str) -> Any:
        try:
            return settings.connect(each, timeout=10).instances()
        except CliError as exc:
            return exc

    rows, failures, seen = [], [], set()
    with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        for each, answer in zip(urls, pool.map(listed, urls)):
            if isinstance(answer, CliError):
                failures.append(answer)
                err.print(f"[yellow]{answer.message}[/]", highlight=False)
                continue
            # Providers sharing one engine (a local fleet) see the same containers: each listed once.
            rows += [{**v, "provider": each} for v in answer if v["id"] not in seen]
            seen.update(v["id"] for v in answer)
    if failures and len(failures) == len(urls):
        raise CliError("no provider answered", failures[0].code)
    listed_names = {r["name"] for r in rows}
    for name in [n for n, v in settings.instances.items() if v.get("provider") in urls and n not in listed_names]:
        try:
            follow(settings, name)  # a drain moved it: its record and SSH entries follow
        except CliError as exc:
            err.print(f"[yellow]{exc.message}[/]", highlight=False)
    if as_json:
        _print_json(rows)
        return 0
    table = Table()
    for column in ("name", "provider", "state", "image", "CPU", "memory", "disk used / limit", "SSH"):
        table.add_column(column)
    for v in rows:
        limits, usage = v["limits"], v.get("disk_usage") or {}
        cpu = f"{limits['cpus']} cores" if limits.get("cpus") else f"{limits.get('cpu_share')} shared"
        table.add_row(plain(v["name"]), plain(v["provider"]), plain(v["state"]), plain(v["image"] or ""), plain(cpu),
                      human_size(limits.get("memory")),
                      f"{human_size(usage.get('size_rw'))} / {human_size(limits.get('disk_limit'))}",
                      plain(f"dockpool ssh {v['name']}" if v["name"] in settings.instances
                            else (v["ssh"] or {}).get("jump_command", "")))
    out.print(table)
    return 0


def forget(settings: Settings, peer: str, url: Optional[str]) -> int:
    """An administrator removes an entry from a provider's peer table (a member that is alive
    comes back after one expiry: excluding a provider is its certificate's business)."""
    provider = settings.connect(settings.provider(url))
    removed = provider.call("DELETE", f"/v1/peers/{quote(peer, safe='')}")["removed"]
    out.print(f"Removed {', '.join(removed)} from {provider.url}'s peer table.", highlight=False)
    return 0


def _run_move(source: Provider, target: Provider, ref: str, offer: dict[str, Any], label: str) -> dict[str, Any]:
    """Ask the source to move ``ref`` with the target's ``offer``, showing the target's progress;
    a failed move gives the target's grant back."""
    answer: dict[str, Any] = {}
    failure: list[CliError] = []

    def run() -> None:
        try:
            answer.update(source.call("POST", f"/v1/instances/{ref}/move", timeout=3700,
                                      json={"target": offer["provider"], "move": offer["id"], "grant": offer["grant"]}))
        except CliError as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    with err.status(f"{label}…") as status:
        while worker.is_alive():  # bounded by the source's answer (its own timeout)
            worker.join(0.5)
            try:
                seen = target.call("GET", f"/v1/moves/{offer['id']}", timeout=5)
                status.update(f"{label}: {human_size(seen['received'])} received")
            except CliError:
                pass
    if failure:
        try:  # give the target's grant back, so it does not count against this client's moves there
            target.call("DELETE", f"/v1/moves/{offer['id']}", timeout=10)
        except CliError:
            pass  # it expires by itself
        raise failure[0]
    return answer


def move(settings: Settings, name: str, to: str, key: Optional[str], wait: float, no_check: bool) -> int:
    """Move an instance to another provider you are logged in to: asked of the target first (does it
    fit? a grant), then of the source, which streams it there and removes its own only after the
    target's instance answers SSH. Progress is read from the target while the source works."""
    target_url = normalise_url(to)
    if settings.token(target_url) is None:
        raise CliError(f"not logged in to {target_url}: run `dockpool login {target_url}` first", AUTH)
    source, ref = _locate(settings, name, None)
    if source.url == target_url:
        raise CliError(f"{name} is on {target_url} already", REFUSED)
    view = source.instance(ref)
    known = settings.instances.get(view["name"]) or {}
    key_path = Path(key or known.get("key") or client_key(settings, None)).expanduser()
    body = move_request(view, key_path.with_name(key_path.name + ".pub").read_text(encoding="utf-8").strip())
    # Providers know each other by name (their fleet certificates), whatever URL this client uses.
    body["source"] = source.call("GET", "/v1/fleet")["provider"]
    target = settings.connect(target_url)
    offer = target.call("POST", "/v1/moves", json=body)  # refused here (401, 400, 409, 429): nothing has moved
    moved = _run_move(source, target, ref, offer, f"Moving {view['name']} to {target_url}")["instance"]
    settings.instances.pop(view["name"], None)
    settings.instances[moved["name"]] = {"provider": target_url, "id": moved["id"], "key": str(key_path)}
    settings.save()
    sshconfig.remove(settings.directory, view["name"])
    config = sshconfig.add(settings.directory, moved["name"], moved["ssh"], key_path)
    problem = None if no_check else ssh_check(settings, moved["name"], time.monotonic() + wait)
    out.print(f"[green]Moved[/] {view['name']} to [bold]{moved['name']}[/] on {target_url}")
    out.print(f"    ssh -F {config} {moved['name']}")
    if problem:
        err.print(f"[yellow]The instance moved but SSH through the jump host failed:[/] {problem}")
        return UNAVAILABLE
    return 0


def _provider_named(settings: Settings, name: str) -> Optional[str]:
    """The URL of the provider logged in to whose fleet name is ``name``, if any."""
    for url in sorted(settings.providers):
        try:
            if settings.connect(url, timeout=10).call("GET", "/v1/fleet").get("provider") == name:
                return url
        except CliError:
            continue
    return None


def relocate(settings: Settings, name: str, url: str, view: dict[str, Any], key: Path) -> Path:
    """``name`` lives at ``url`` now, as ``view``: its record and SSH entries follow it there, and
    the old name stays an alias of the new place. The SSH config's path."""
    known = settings.instances.pop(name, None) or {}
    aliases = sorted({*known.get("aliases", []), name} - {view["name"]})
    settings.instances[view["name"]] = {"provider": url, "id": view["id"], "key": str(key),
                                        **({"aliases": aliases} if aliases else {})}
    settings.save()
    for host in (view["name"], *aliases):
        config = sshconfig.add(settings.directory, host, view["ssh"], key)
    return config


def restore(settings: Settings, name: str, key: Optional[str], wait: float, no_check: bool, as_json: bool) -> int:
    """Start ``name`` from its replica on the member that holds it, once its provider is gone from
    the fleet: the providers logged in to are asked which holds one (the provider that ran it is
    not asked; it may be down)."""
    known = settings.instances.get(name) or {}
    held = []
    for url in sorted(u for u in settings.providers if u != known.get("provider")):
        try:
            held += [(r["refreshed"], url, r) for r in settings.connect(url, timeout=10).call("GET", "/v1/replicas")[
                "replicas"] if r["instance"] == name and not r["restored"]]
        except CliError as exc:
            err.print(f"[yellow]{url} did not answer ({exc.message})[/]", highlight=False)
    if not held:
        raise CliError(f"no provider you are logged in to holds a replica of {name} (`dockpool replicas {name}` names "
                       "its holder: log in to it)", NOT_FOUND)
    _refreshed, url, replica = max(held, key=lambda h: h[0])  # the newest, should two hold one
    key_path = Path(known.get("key") or client_key(settings, key)).expanduser()
    with err.status(f"Restoring {name} on {url} from its replica of {replica['refreshed']}…"):
        view = settings.connect(url).call("POST", f"/v1/replicas/{quote(replica['provider'], safe='')}/"
                                                  f"{quote(name, safe='')}/restore", timeout=1800)
    config = relocate(settings, name, url, view, key_path)
    problem = None if no_check else ssh_check(settings, view["name"], time.monotonic() + wait)
    if as_json:
        _print_json({**view, "ssh_config": str(config), "ssh_checked": not no_check and problem is None})
    else:
        out.print(f"[green]Restored[/] {name} on {url} as [bold]{view['name']}[/] from its replica of "
                  f"{replica['refreshed']}")
        out.print(f"    ssh -F {config} {view['name']}")
    if problem:
        err.print(f"[yellow]The instance was restored but SSH through the jump host failed:[/] {problem}")
        return UNAVAILABLE
    return 0


def follow(settings: Settings, name: str) -> Optional[str]:
    """When a drain moved ``name`` (one `up` made), its record and SSH entries follow it to the new
    provider; the old name stays an SSH alias of the new place. Its new name, or None if it did not move."""
    known = settings.instances.get(name)
    if not known:
        return None
    try:
        settings.connect(known["provider"], timeout=10).instance(name)
        return None
    except CliError as exc:
        moved = exc.detail.get("moved_to") if exc.code == NOT_FOUND and isinstance(exc.detail, dict) else None
        if not isinstance(moved, dict):
            return None  # there, gone, or unreachable: as before
    url = _provider_named(settings, str(moved.get("provider")))
    if url is None:
        raise CliError(f"{name} was moved to {moved.get('provider')} ({moved.get('address')}) as {moved.get('name')} when "
                       "its provider was drained: log in to that provider (`dockpool login URL`) to reach it", NOT_FOUND)
    view = settings.connect(url).instance(str(moved["name"]))
    relocate(settings, name, url, view, Path(known["key"]))
    err.print(f"{name} was moved to {view['name']} on {url} (its provider was drained); its SSH entries follow it",
              highlight=False)
    return view["name"]


def act(settings: Settings, verb: str, name: str, url: Optional[str]) -> int:
    provider, ref = _locate(settings, name, url)
    view = provider.action(ref, verb)
    out.print(f"{view['name']}: {view['state']}")
    return 0


def _print_replicas(name: str, replicas: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        _print_json(replicas)
        return
    if not replicas:
        out.print(f"{name} has no replica yet: `dockpool replicate {name}` makes one")
        return
    table = Table("HOLDER", "LIVE", "AGE", "REFRESHED", "SHIPPED", "KIND", "PAUSE")
    for r in replicas:
        table.add_row(plain(r["holder"]), "yes" if r["live"] else "[red]no[/]", f"{r['age_seconds']:.0f} s",
                      plain(r["refreshed"]), human_size(r["shipped_bytes"]), "full" if r["full"] else "changes",
                      f"{r['pause_seconds'] * 1000:.0f} ms")
    out.print(table)


def replicate(settings: Settings, name: str, url: Optional[str], as_json: bool) -> int:
    provider, ref = _locate(settings, name, url)
    _print_replicas(name, [provider.replicate(ref)], as_json)
    return 0


def replicas(settings: Settings, name: str, url: Optional[str], as_json: bool) -> int:
    provider, ref = _locate(settings, name, url)
    _print_replicas(name, provider.replicas(ref), as_json)
    return 0


def rm(settings: Settings, name: str, url: Optional[str]) -> int:
    provider, ref = _locate(settings, name, url)
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


def speedtest(settings: Settings, url: Optional[str], size: int, as_json: bool) -> int:
    provider = _provider(settings, url)
    got, down = provider.download(size)
    sent, upload_seconds = provider.upload(size)
    result = {"provider": provider.url, "bytes": size, "download_bytes": got, "upload_bytes": sent,
              "download_mbit_s": round(got * 8 / down / 1e6, 1), "upload_mbit_s": round(sent * 8 / upload_seconds / 1e6, 1)}
    if got != size or sent != size:
        raise CliError(f"the speed test moved {got} down and {sent} up, not {size} bytes each way", UNAVAILABLE, result)
    if as_json:
        _print_json(result)
    else:
        out.print(f"{provider.url}: download {result['download_mbit_s']} Mbit/s, upload {result['upload_mbit_s']} Mbit/s "
                  f"({human_size(size)} each way)")
    return 0


def epoch_seconds(value: str, option: str) -> str:
    """An ISO 8601 time (UTC unless it names a zone) or whole seconds since the epoch, as the latter."""
    if value.isdigit():
        return value
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(f"{option}: an ISO 8601 time such as 2026-12-01 or 2026-12-01T08:00:00Z, or seconds since the "
                       "epoch", REFUSED) from None
    return str(int((moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()))


def usage(settings: Settings, url: Optional[str], since: Optional[str], until: Optional[str], as_json: bool) -> int:
    """What the client's instances used on every provider logged in to (asked at once), or on
    ``url``, per instance and in total (GET /v1/usage; from the start of the month unless asked)."""
    urls = [settings.provider(url)] if url else sorted(settings.providers)
    if not urls:
        raise CliError("not logged in to any provider: run `dockpool login URL` first", AUTH)
    query = {k: epoch_seconds(v, f"--{k}") for k, v in (("since", since), ("until", until)) if v}

    def asked(each: str) -> Any:
        try:
            return settings.connect(each, timeout=10).call("GET", "/v1/usage", params=query)
        except CliError as exc:
            return exc

    reports = []
    with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        for each, answer in zip(urls, pool.map(asked, urls)):
            if isinstance(answer, CliError):
                err.print(f"[yellow]{answer.message}[/]", highlight=False)
                continue
            reports.append({**answer, "url": each})
    if not reports:
        raise CliError("no provider answered", UNAVAILABLE)
    rows = [{**row, "provider": report["url"]} for report in reports for row in report["instances"]]
    total = {k: sum(r[k] for r in rows) for k in ("cpu_seconds", "memory_gib_hours", "read_bytes", "write_bytes",
                                                   "rx_bytes", "tx_bytes", "gpu_seconds")}
    if as_json:
        _print_json({"providers": reports, "total": total})
        return 0
    table = Table("PROVIDER", "INSTANCE", "CPU HOURS", "MEMORY GiB-HOURS", "GPU HOURS", "DISK READ / WRITTEN", "NET IN / OUT",
                  title=f"since {reports[0]['since']}")
    for r in [*rows, {**total, "provider": "", "name": "[bold]total[/]"}]:
        table.add_row(plain(r["provider"]), r["name"] if r["provider"] == "" else plain(r["name"]),
                      f"{r['cpu_seconds'] / 3600:.3f}", f"{r['memory_gib_hours']:.3f}", f"{r['gpu_seconds'] / 3600:.3f}",
                      f"{human_size(r['read_bytes'])} / {human_size(r['write_bytes'])}",
                      f"{human_size(r['rx_bytes'])} / {human_size(r['tx_bytes'])}")
    out.print(table)
    for report in reports:
        for b in report.get("budgets") or []:
            color = "red" if b["exhausted"] else "yellow" if b["warning"] else "green"
            out.print(f"[{color}]{report['url']}: {b['budget']} {b['used']:g} of {b['limit']:g} used ({b['percent']:g}%)"
                      f"{', spent' if b['exhausted'] else ''}; package {report['package']}, resets {b['resets']}[/]",
                      highlight=False)
    return 0

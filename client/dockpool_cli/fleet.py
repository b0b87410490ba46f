"""The fleet as a client sees it: the providers in the peer tables of those it is logged in to,
each probed from here (`dockpool providers`, `up --best`), and `dockpool forget`."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Union

from dockpool.addresses import host_port

from . import render
from .api import Provider
from .errors import AUTH, UNAVAILABLE, CliError
from .render import out
from .settings import Settings
from .shapes import Peer


def relay_of(peer: Peer) -> Optional[dict[str, Any]]:
    """The first relay a member behind NAT names in its signed entry (docs/nat.md), if any."""
    paths = (peer.get("dockpool") or {}).get("relays") if isinstance(peer.get("dockpool"), dict) else None
    first = paths[0] if isinstance(paths, list) and paths else None
    return first if isinstance(first, dict) and isinstance(first.get("address"), str) else None


def peer_url(peer: Peer) -> str:
    """Where a peer's API is reached: its own address, or behind NAT its first relay's HTTPS port
    (the plain port is never relayed)."""
    relay = relay_of(peer)
    if relay is not None:
        return f"https://{host_port(relay['address'], relay.get('api_port'))}"
    return f"http://{host_port(peer.get('IPV4') or peer.get('IPV6') or '', peer.get('ServerPort'))}"


def probe(provider: Provider) -> dict[str, Any]:
    """Latency measured from here, and the provider's hardware and free capacity."""
    url = provider.url
    try:
        latency, health = provider.latency()
        specs = provider.specs()
        return {
            "url": url, "reachable": True, "latency_ms": round(latency * 1000, 2), "draining": health.get("draining") is True,
            "hostname": specs["hostname"], "cpu": specs["cpu"]["model"], "cores": specs["cpu"]["logical_cpus"],
            "memory_total": specs["memory"]["total"], "memory_available": specs["memory"]["available"],
            "disk_free": specs["disk"]["free"], "gpus": [g["name"] for g in specs["gpus"]],
            "logged_in": provider.logged_in,
        }
    except CliError as exc:
        return {"url": url, "reachable": False, "error": exc.message}
    except (KeyError, TypeError, AttributeError):  # a peer is anyone's: its answer may be anything
        return {"url": url, "reachable": False, "error": "its /v1/specs is not a dockpool provider's"}


def probe_all(settings: Settings, urls: list[str]) -> list[dict[str, Any]]:
    """Every provider probed at once (5 s per call at most), so a dead one costs one timeout."""
    with ThreadPoolExecutor(max_workers=min(32, max(1, len(urls)))) as pool:
        return list(pool.map(lambda u: probe(settings.connect(u, timeout=5)), urls))


def fleet_tables(settings: Settings, urls: list[str], relayed: Optional[set[str]] = None
                 ) -> tuple[dict[str, str], list[CliError]]:
    """The peer tables of ``urls`` (asked at once): every provider they know, URL -> name; the
    names of those reached through a relay are added to ``relayed``."""
    def table(url: str) -> Union[list[Peer], CliError]:
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
                if relayed is not None and relay_of(peer) is not None:
                    relayed.add(str(peer.get("Name", "")))
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
    relayed: set[str] = set()
    known, failures = fleet_tables(settings, asked, relayed)
    for exc in failures:
        render.warn(exc.message)
    if len(failures) == len(asked):
        raise CliError("no provider answered with its peer table", failures[0].code)
    found = probe_all(settings, sorted(known))
    for row in found:
        row["name"] = known[row["url"]]
        row["relayed"] = row["name"] in relayed
    found.sort(key=lambda r: (not r["reachable"], r.get("latency_ms", 0.0)))
    if as_json:
        render.print_json(found)
    else:
        render.providers_table(found, asked, set(settings.providers))
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


def provider_named(settings: Settings, name: str) -> Optional[str]:
    """The URL of the provider logged in to whose fleet name is ``name``, if any."""
    for url in sorted(settings.providers):
        try:
            if settings.connect(url, timeout=10).fleet_name() == name:
                return url
        except CliError:
            continue
    return None


def forget(settings: Settings, peer: str, url: Optional[str]) -> int:
    """An administrator removes an entry from a provider's peer table (a member that is alive
    comes back after one expiry: excluding a provider is its certificate's business)."""
    provider = settings.connect(settings.provider(url))
    removed = provider.forget_peer(peer)
    out.print(f"Removed {', '.join(removed)} from {provider.url}'s peer table.", highlight=False)
    return 0

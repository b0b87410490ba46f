"""What the CLI prints: rich tables and messages on the terminal, or JSON with --json. Nothing
here talks to a provider or writes a file; a provider's values are shown through ``plain``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dockpool.units import human_size

from .shapes import InstanceView, ReplicaView, UsageReport

out = Console(emoji=False)  # a fingerprint such as 05:CD:DD holds ":CD:", an emoji code
err = Console(stderr=True, emoji=False)


def plain(value: Any) -> Text:
    """What a provider sent, shown as text: never read as rich markup (a peer named
    "[link=...]" stays those characters) and without control characters."""
    return Text("".join(ch for ch in str(value) if ch.isprintable()))


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def warn(message: str) -> None:
    """A provider's failure that does not stop the command (the others answered)."""
    err.print(f"[yellow]{message}[/]", highlight=False)


def providers_table(found: list[dict[str, Any]], asked: list[str], logged_in: set[str]) -> None:
    view = Table(title=f"Providers known to {', '.join(asked)}")
    for column in ("name", "url", "latency", "CPU", "cores", "RAM free / total", "disk free", "GPU", "logged in"):
        view.add_column(column)
    for row in found:
        if not row["reachable"]:
            name = Text(row["name"]) + (Text(" (relayed)", style="cyan") if row.get("relayed") else Text(""))
            view.add_row(name, plain(row["url"]), Text("unreachable", style="red"), "", "", "", "", "", "")
            continue
        name = (Text(row["name"]) + (Text(" (draining)", style="yellow") if row["draining"] else Text(""))
                + (Text(" (relayed)", style="cyan") if row.get("relayed") else Text("")))
        view.add_row(name, plain(row["url"]), f"{row['latency_ms']:.1f} ms", plain(row["cpu"]),
                     plain(row["cores"]), f"{human_size(row['memory_available'])} / {human_size(row['memory_total'])}",
                     human_size(row["disk_free"]), plain(", ".join(row["gpus"]) or "-"),
                     "yes" if row["url"] in logged_in else "")
    out.print(view)


def instances_table(rows: list[dict[str, Any]], own: set[str]) -> None:
    """``own``: the names `up` made here, reached by `dockpool ssh`; others show the provider's jump command."""
    table = Table()
    for column in ("name", "provider", "state", "image", "CPU", "memory", "disk used / limit", "SSH"):
        table.add_column(column)
    for v in rows:
        limits, usage = v["limits"], v.get("disk_usage") or {}
        cpu = f"{limits['cpus']} cores" if limits.get("cpus") else f"{limits.get('cpu_share')} shared"
        table.add_row(plain(v["name"]), plain(v["provider"]), plain(v["state"]), plain(v["image"] or ""), plain(cpu),
                      human_size(limits.get("memory")),
                      f"{human_size(usage.get('size_rw'))} / {human_size(limits.get('disk_limit'))}",
                      plain(f"dockpool ssh {v['name']}" if v["name"] in own else (v["ssh"] or {}).get("jump_command", "")))
    out.print(table)


def ready(view: InstanceView, url: str, config: Path, seconds: float) -> None:
    """`up`'s answer: where the instance is and how to log in."""
    out.print(f"[green]Ready[/] in {seconds:.1f} s: [bold]{view['name']}[/] on {url}")
    out.print(f"    ssh -F {config} {view['name']}   (or `dockpool ssh {view['name']}`)")
    out.print(f"    Add `Include {config}` to ~/.ssh/config to type just `ssh {view['name']}`.")
    desktop(view.get("desktop"))


def desktop(shown: Optional[dict[str, Any]]) -> None:
    if not shown:
        return
    out.print(f"    Desktop in the browser: {shown['novnc_url']}")
    if shown.get("vnc_password"):
        out.print(f"    VNC password (shown this once): [bold]{shown['vnc_password']}[/]")


def instance_json(view: InstanceView, config: Path, ssh_checked: bool) -> None:
    """--json's answer for `up` and `restore`: the instance, its SSH config, and whether a login worked."""
    print_json({**view, "ssh_config": str(config), "ssh_checked": ssh_checked})


def ssh_failed(what: str, problem: str) -> None:
    err.print(f"[yellow]The instance {what} but SSH through the jump host failed:[/] {problem}")


def replicas(name: str, shown: list[ReplicaView], as_json: bool) -> None:
    if as_json:
        print_json(shown)
        return
    if not shown:
        out.print(f"{name} has no replica yet: `dockpool replicate {name}` makes one")
        return
    table = Table("HOLDER", "LIVE", "AGE", "REFRESHED", "SHIPPED", "KIND", "PAUSE")
    for r in shown:
        table.add_row(plain(r["holder"]), "yes" if r["live"] else "[red]no[/]", f"{r['age_seconds']:.0f} s",
                      plain(r["refreshed"]), human_size(r["shipped_bytes"]), "full" if r["full"] else "changes",
                      f"{r['pause_seconds'] * 1000:.0f} ms")
    out.print(table)


def usage_table(rows: list[dict[str, Any]], total: dict[str, Any], reports: list[UsageReport]) -> None:
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

"""Packages and budgets (issue 25, part 2): the operator's named packages, each a set of the
provider's limits and budgets over a calendar month (UTC) of what the usage ledger counts;
each client has one.

A client over one of its budgets gets no new instance (402, naming the budget and when it
resets) and cannot start a stopped one; its running instances are stopped, never removed,
by a pass every ``PASS_SECONDS`` (or every gossip round, if shorter). At ``WARN_AT`` of a budget, GET /v1/usage, the CLI and the
status page warn.

A budget is the fleet's, not the provider's (issue 35): what a client used on the other members
this month (their signed counters, fleet/counters.py, as this member knows them) is added to what
this provider's ledger counted, so a spent budget refuses her new instances, starts, moves in and
restores on every member, and each member's pass stops her instances there.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Protocol

from prometheus_client import Counter

from dockpool.errors import DockpoolError
from dockpool.instances import InstanceManager
from dockpool.labels import OWNER

from .config import Client
from .packages import BUDGETS, charge
from .usage_report import UsageReport, month_start

WARN_AT = 0.8
PASS_SECONDS = 30.0
log = logging.getLogger("dockpool.api")


class OverBudget(DockpoolError):
    http_status = 402


def month_end(now: float) -> float:
    start = datetime.fromtimestamp(month_start(now), timezone.utc)
    return (start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)).timestamp()


class OtherMembersSpend(Protocol):
    """What a client used this month on the other members, as they signed it (fleet/spend.FleetSpend is it)."""

    def others(self, client: str) -> dict[str, float]: ...


class Budgets:
    def __init__(self, packages: dict[str, dict[str, Any]], usage: UsageReport, clock: Callable[[], float] = time.time,
                 refusals: Optional[Counter] = None, fleet: Optional[OtherMembersSpend] = None) -> None:
        self.packages, self.usage, self.clock = packages, usage, clock
        self.fleet = fleet  # None: this provider alone
        self.refusals = refusals  # a Prometheus counter by budget (fleet/metrics.py), if served

    def status(self, client: Client) -> list[dict[str, Any]]:
        """Each budget of the client's package this month: its limit, what is used and left, when it resets."""
        budgets = self.packages.get(client.package, {}).get("budgets", {}) if client.package else {}
        if not budgets:
            return []
        now = self.clock()
        here = self.usage.totals(client.name, month_start(now), now)
        elsewhere = self.fleet.others(client.name) if self.fleet is not None else {}
        used = {k: v + elsewhere.get(k, 0.0) for k, v in here.items()}
        resets = datetime.fromtimestamp(month_end(now), timezone.utc).isoformat(timespec="seconds")
        shown = []
        for budget, limit in sorted(budgets.items()):
            total, unit = BUDGETS[budget]
            spent = used[total] / unit
            shown.append({"budget": budget, "limit": limit, "used": round(spent, 6), "used_here": round(here[total] / unit, 6),
                          "left": round(max(0.0, limit - spent), 6),
                          "percent": round(100 * spent / limit, 1), "exhausted": spent >= limit,
                          "warning": WARN_AT <= spent / limit < 1, "resets": resets})
        return shown

    def charges(self, client: Client) -> dict[str, Any]:
        """What the client was charged this month: here, at this provider's prices (her package's),
        and on the other members at theirs, as they signed it (fleet/counters.py)."""
        prices = self.packages.get(client.package, {}).get("prices", {}) if client.package else {}
        now = self.clock()
        here = charge(self.usage.totals(client.name, month_start(now), now), prices)
        elsewhere = round(self.fleet.others(client.name).get("credits", 0.0), 6) if self.fleet is not None else 0.0
        return {"prices": prices, "here": here, "elsewhere": elsewhere, "total": round(here + elsewhere, 6)}

    def exhausted(self, client: Client) -> Optional[dict[str, Any]]:
        return next((b for b in self.status(client) if b["exhausted"]), None)

    def check(self, client: Client, doing: str) -> None:
        """Refuse ``doing`` (a new instance, a start, a move in, a restore) while one of the client's
        budgets is spent, across the fleet."""
        spent = self.exhausted(client)
        if spent:
            if self.refusals is not None:
                self.refusals.labels(spent["budget"]).inc()
            raise OverBudget(f"{doing} refused: {client.name}'s {spent['budget']} budget of package {client.package} "
                             f"is spent ({spent['used']:g} of {spent['limit']:g}); it resets at {spent['resets']}",
                             "budget", spent)

    def enforce(self, clients: tuple[Client, ...], manager: InstanceManager) -> list[str]:
        """Stop (never remove) the running instances of every client whose budget is spent."""
        stopped: list[str] = []
        over = {c.name: spent for c in clients if c.package and (spent := self.exhausted(c))}
        if not over:
            return stopped
        for record in manager.records():
            owner = record.labels.get(OWNER)
            if owner in over and record.status == "running":
                manager.stop(record.id)
                stopped.append(record.name)
                log.warning("stopped %s: %s's %s budget is spent until %s", record.name, owner, over[owner]["budget"],
                            over[owner]["resets"])
        return stopped

    def enforcing(self, clients: tuple[Client, ...], manager: Callable[[], InstanceManager],
                  every: float = PASS_SECONDS) -> None:
        """The pass, in a thread of its own, every ``every`` seconds (the watchdog's 30 s at most)."""
        if not any(c.package and self.packages[c.package]["budgets"] for c in clients):
            return  # no budget to enforce

        def run() -> None:
            while True:
                time.sleep(every)
                try:
                    self.enforce(clients, manager())
                except DockpoolError as exc:  # the engine or the ledger is away: next time
                    log.error("budgets: %s", exc.message)
        threading.Thread(target=run, name="enforce-budgets", daemon=True).start()

"""``GET /v1/usage``: what the caller's instances used here (an administrator: every client's,
or one's), over a time range, as JSON or CSV, read from the usage ledger the watchdog writes
(dockpool.ledger). The API only reads it, but for what replica refreshes cost (charge); a
ledger not made yet is an empty report."""
from __future__ import annotations

import csv
import io
import os
import re
import threading
import time
from datetime import datetime, timezone
from typing import Any, Optional

from dockpool.errors import DockpoolError, InvalidInput
from dockpool.ledger import Ledger
from dockpool.validation import validate_name

from .config import Client

FIELDS = ("owner", "name", "instance_id", "seconds", "cpu_seconds", "memory_gib_hours", "read_bytes", "write_bytes",
          "rx_bytes", "tx_bytes", "gpu_seconds")
SUMMED = FIELDS[3:]
LATEST = 253402300799.0  # 9999-12-31T23:59:59Z


class OthersUsage(DockpoolError):
    http_status = 403


def parse_time(value: str, field: str) -> float:
    """Whole seconds since the epoch, up to the end of 9999 (the CLI turns ISO 8601 times into these)."""
    if not re.fullmatch(r"[0-9]{1,12}", value) or int(value) > LATEST:
        raise InvalidInput(f"{field}: whole seconds since the epoch (1796083200 is 2026-12-01T00:00:00Z), at most "
                           f"{int(LATEST)}", field)
    return float(value)


def month_start(now: float) -> float:
    """The first moment of ``now``'s month, UTC: where a report starts unless asked otherwise."""
    return datetime.fromtimestamp(now, timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


class UsageReport:
    def __init__(self, path: str, provider: str) -> None:
        self.path, self.provider = path, provider
        self._ledger: Optional[Ledger] = None
        self._lock = threading.Lock()

    def check(self) -> None:
        """At start: a ledger that cannot be read stops the service, naming its backup (never reset)."""
        with self._lock:
            self._open()

    def _open(self) -> Optional[Ledger]:
        if self._ledger is None and os.path.exists(self.path):
            self._ledger = Ledger(self.path, reader=True)
        return self._ledger

    def _read(self, owner: Optional[str], since: float, until: float) -> list[dict[str, Any]]:
        with self._lock:  # one connection, one query at a time
            ledger = self._open()
            return ledger.usage(owner, since, until) if ledger else []  # none: nothing metered yet

    def charge(self, instance_id: str, owner: str, name: str, cpu_ns: int, tx_bytes: int) -> None:
        """Charge an instance's owner for work done on its behalf outside its cgroup (a replica
        refresh): the one thing the API writes into the ledger, the watchdog's passes being the
        rest; SQLite serialises the two writers. A ledger not made yet is made here."""
        with self._lock:
            if self._ledger is None and not os.path.exists(self.path):
                Ledger(self.path).close()  # made (and shared with the watchdog) as its writer makes it
            ledger = self._open()
            if ledger is not None:
                ledger.charge(instance_id, owner, name, cpu_ns=cpu_ns, tx_bytes=tx_bytes)

    def totals(self, owner: str, since: float, until: float) -> dict[str, float]:
        """What ``owner``'s instances used here from ``since`` to ``until``, summed."""
        return summed(self._read(owner, since, until))

    def by_owner(self, since: float, until: float) -> dict[str, dict[str, float]]:
        """What each owner's instances used here from ``since`` to ``until``, summed (the fleet's
        counters of this provider: fleet/spend.py)."""
        rows = self._read(None, since, until)
        return {owner: summed([r for r in rows if r["owner"] == owner]) for owner in sorted({r["owner"] for r in rows})}

    def per_client(self, clients: list[str]) -> dict[str, dict[str, float]]:
        """Everything each of ``clients`` used here, summed over the ledger (for Prometheus: only
        configured names become label values, so a caller cannot add series)."""
        rows = self._read(None, 0.0, LATEST)
        return {name: summed([r for r in rows if r["owner"] == name]) for name in clients}

    def report(self, caller: Client, query: dict[str, str]) -> dict[str, Any]:
        """``query``: ``client`` (an administrator's filter), ``since`` and ``until``."""
        asked = query.get("client")
        if asked is not None:
            validate_name(asked, "client")
            if asked != caller.name and not caller.admin:
                raise OthersUsage("client: only an administrator reads another client's usage", "client")
        owner = asked if asked is not None else (None if caller.admin else caller.name)
        now = time.time()
        since = parse_time(query["since"], "since") if "since" in query else month_start(now)
        until = parse_time(query["until"], "until") if "until" in query else now
        rows = self._read(owner, since, until) if until > since else []
        return {"provider": self.provider, "client": owner, "since": _iso(since), "until": _iso(until),
                "instances": rows, "total": summed(rows)}


def summed(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The SUMMED columns of ``rows`` (the ledger's per-instance rows), added up."""
    return {k: sum(r[k] for r in rows) for k in SUMMED}


def as_csv(report: dict[str, Any]) -> str:
    """One line per instance, the columns of FIELDS, with the provider and the range."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("provider", "since", "until") + FIELDS)
    for row in report["instances"]:
        writer.writerow([report["provider"], report["since"], report["until"], *(row[k] for k in FIELDS)])
    return out.getvalue()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds")

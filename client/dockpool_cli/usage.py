"""`dockpool usage`: what the client's instances used, per instance and in total, on every provider."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Optional, Union

from . import render
from .errors import AUTH, REFUSED, UNAVAILABLE, CliError
from .settings import Settings
from .shapes import UsageReport

COUNTERS = ("cpu_seconds", "memory_gib_hours", "read_bytes", "write_bytes", "rx_bytes", "tx_bytes", "gpu_seconds")


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


def reports(settings: Settings, urls: list[str], since: Optional[str], until: Optional[str]) -> list[UsageReport]:
    """Each provider's report (asked at once), with its URL; one that does not answer is named and skipped."""
    def asked(each: str) -> Union[UsageReport, CliError]:
        try:
            return settings.connect(each, timeout=10).usage(since, until)
        except CliError as exc:
            return exc

    found: list[UsageReport] = []
    with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
        for each, answer in zip(urls, pool.map(asked, urls)):
            if isinstance(answer, CliError):
                render.warn(answer.message)
                continue
            found.append({**answer, "url": each})
    if not found:
        raise CliError("no provider answered", UNAVAILABLE)
    return found


def usage(settings: Settings, url: Optional[str], since: Optional[str], until: Optional[str], as_json: bool) -> int:
    """What the client's instances used on every provider logged in to (asked at once), or on
    ``url``, per instance and in total (GET /v1/usage; from the start of the month unless asked)."""
    urls = [settings.provider(url)] if url else sorted(settings.providers)
    if not urls:
        raise CliError("not logged in to any provider: run `dockpool login URL` first", AUTH)
    times = [epoch_seconds(v, f"--{k}") if v else None for k, v in (("since", since), ("until", until))]
    found = reports(settings, urls, times[0], times[1])
    rows: list[dict[str, Any]] = [{**row, "provider": report["url"]} for report in found for row in report["instances"]]
    total = {k: sum(r[k] for r in rows) for k in COUNTERS}
    if as_json:
        render.print_json({"providers": found, "total": total})
    else:
        render.usage_table(rows, total, found)
    return 0


"""The operator's packages (``packages`` in the API settings, ``provider_api_packages``): each a
set of the provider's limits and budgets over a calendar month of what the usage ledger
counts (budgets.py enforces them), and the prices this provider charges for what it counts
(credits per budget unit: per CPU hour, GiB-hour of memory, egress GiB, GPU hour)."""
from __future__ import annotations

from typing import Any

from dockpool.errors import InvalidInput
from dockpool.limits import Limits

# budget -> (the ledger's sum it bounds, that sum's units per budget unit)
BUDGETS = {"cpu_hours": ("cpu_seconds", 3600.0), "memory_gib_hours": ("memory_gib_hours", 1.0),
           "egress_gib": ("tx_bytes", float(1024**3)), "gpu_hours": ("gpu_seconds", 3600.0)}


def parse_packages(raw: Any) -> dict[str, dict[str, Any]]:
    """``packages``: {name: {"limits": {...}, "budgets": {budget: amount}}}, each checked."""
    if not isinstance(raw, dict):
        raise InvalidInput("packages: a mapping of package names to {limits, budgets}", "packages")
    packages = {}
    for name, package in raw.items():
        where = f"packages.{name}"
        if not isinstance(package, dict) or set(package) - {"limits", "budgets", "prices"}:
            raise InvalidInput(f"{where}: {{limits, budgets, prices}}", where)
        budgets = package.get("budgets") or {}
        if not isinstance(budgets, dict) or set(budgets) - set(BUDGETS):
            raise InvalidInput(f"{where}.budgets: any of {', '.join(BUDGETS)}", f"{where}.budgets")
        for budget, amount in budgets.items():
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
                raise InvalidInput(f"{where}.budgets.{budget}: a positive number", f"{where}.budgets.{budget}")
        prices = package.get("prices") or {}
        if not isinstance(prices, dict) or set(prices) - set(BUDGETS):
            raise InvalidInput(f"{where}.prices: credits per unit of any of {', '.join(BUDGETS)}", f"{where}.prices")
        for unit, price in prices.items():
            if isinstance(price, bool) or not isinstance(price, (int, float)) or not 0 <= price < 1e12:
                raise InvalidInput(f"{where}.prices.{unit}: credits per unit, zero or more", f"{where}.prices.{unit}")
        packages[name] = {"limits": tuple(sorted(Limits.parse(package.get("limits") or {}, f"{where}.limits").items())),
                          "budgets": {k: float(v) for k, v in budgets.items()},
                          "prices": {k: float(v) for k, v in prices.items()}}
    return packages


def charge(used: dict[str, float], prices: dict[str, float]) -> float:
    """Credits for ``used`` (the ledger's sums: cpu_seconds, tx_bytes, ...) at ``prices`` (credits
    per budget unit), rounded to a millionth of a credit."""
    return round(sum(used.get(total, 0.0) / unit * prices.get(budget, 0.0) for budget, (total, unit) in BUDGETS.items()), 6)

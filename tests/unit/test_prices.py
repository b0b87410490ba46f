"""Prices (issue 35, prices and credits, first part): a package prices what budgets bound, in
credits per unit; a provider charges a client at its own prices and signs the charge with its
counters, so her charges elsewhere add up at the prices of the providers where she ran. A real
ledger and real signed counter sets."""
from __future__ import annotations

import pytest

from dockpool.errors import InvalidInput
from dockpool.ledger import Ledger, Reading
from dockpool_api.budgets import Budgets
from dockpool_api.config import Client
from dockpool_api.fleet.counters import CounterSigner, SpendBook, check_set
from dockpool_api.fleet.membership import Signer
from dockpool_api.packages import charge, parse_packages
from dockpool_api.usage_report import UsageReport

GIB = 1024**3
NOW = 1_796_083_200.0 + 7200  # two hours into December 2026, UTC


def test_prices_are_credits_per_budget_unit():
    [package] = parse_packages({"p": {"prices": {"cpu_hours": 2, "egress_gib": 0.5}}}).values()
    assert package["prices"] == {"cpu_hours": 2.0, "egress_gib": 0.5} and package["budgets"] == {}
    assert charge({"cpu_seconds": 5400.0, "tx_bytes": 4 * GIB, "gpu_seconds": 99.0}, package["prices"]) == 5.0
    assert charge({"cpu_seconds": 5400.0}, {}) == 0.0


@pytest.mark.parametrize("prices, field", [
    ({"cpu_hours": -1}, "packages.p.prices.cpu_hours"),
    ({"cpu_hours": "1"}, "packages.p.prices.cpu_hours"),
    ({"cpu_hours": True}, "packages.p.prices.cpu_hours"),
    ({"bitcoin": 1}, "packages.p.prices"),
    ([1], "packages.p.prices"),
])
def test_a_bad_price_is_refused_naming_the_field(prices, field):
    with pytest.raises(InvalidInput) as refused:
        parse_packages({"p": {"prices": prices}})
    assert refused.value.field == field


class Fleet:
    """The other members' counters as a FleetSpend serves them, from a real spend book."""

    def __init__(self, book: SpendBook) -> None:
        self.book = book

    def others(self, client: str) -> dict[str, float]:
        return self.book.others(client, "2026-12")


def test_a_client_is_charged_at_the_price_of_each_provider_where_she_ran(tmp_path):
    moment = [NOW - 60]
    ledger = Ledger(str(tmp_path / "usage.db"), lambda: moment[0])
    for cpu_s in (0.0, 3600.0):  # one CPU hour here, in two passes 30 s apart
        moment[0] += 30
        ledger.record([Reading("id-1", "alice", "alice-here-1", "g1", GIB, cpu_ns=int(cpu_s * 1e9))])
    (tmp_path / "b").mkdir()
    Signer(str(tmp_path / "b" / "membership.key"))
    b = CounterSigner(str(tmp_path / "b" / "membership.key"))
    # b charged her 7 credits for 2 CPU hours there, at its own price of 3.5
    elsewhere = b.sign("b", 5, {"2026-12": {"alice": {"cpu_seconds": 7200.0, "credits": 7.0}}})
    check_set(elsewhere, "sets[0]")
    book = SpendBook("here")
    book.take(elsewhere, "sets[0]", b.public)
    packages = parse_packages({"paid": {"prices": {"cpu_hours": 1.5}, "budgets": {"cpu_hours": 10}}})
    budgets = Budgets(packages, UsageReport(str(tmp_path / "usage.db"), "here"), lambda: NOW, fleet=Fleet(book))
    alice = Client("alice", "", package="paid")
    assert budgets.charges(alice) == {"prices": {"cpu_hours": 1.5}, "here": 1.5, "elsewhere": 7.0, "total": 8.5}
    assert budgets.status(alice)[0]["used"] == pytest.approx(3.0)  # budgets count the hours wherever they ran
    assert budgets.charges(Client("bob", "")) == {"prices": {}, "here": 0.0, "elsewhere": 0.0, "total": 0.0}

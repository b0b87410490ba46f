"""The lease's clock (fleet/lease.py): when a holder is asked, and when its instances must stop."""
from __future__ import annotations

from dockpool_api.fleet.lease import Lease


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_holder_is_asked_after_a_quarter_and_its_lease_lapses_at_half_the_expiry():
    clock = Clock()
    lease = Lease(60.0, clock)
    clock.now += 14.9
    assert not lease.to_renew("target") and not lease.lapsed("target")  # silence counts from the start
    clock.now += 0.1
    assert lease.to_renew("target") and not lease.lapsed("target")
    lease.heard("target")
    clock.now += 29.9
    assert lease.to_renew("target") and not lease.lapsed("target")
    clock.now += 0.1
    assert lease.lapsed("target") and lease.silent("target") == 30.0
    assert lease.lapsed("spare")  # never heard since the start, 45 s ago
    lease.heard("target")
    assert not lease.lapsed("target") and lease.silent("target") == 0.0


def test_the_lease_is_kept_often_enough_to_act_well_within_its_margin():
    assert Lease(5.0).pause() == 0.5 and Lease(60.0).pause() == 5.0 and Lease(1.0).pause() == 0.1

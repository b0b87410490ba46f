"""'This machine' is declared once (dockpool/this_machine.py); the places that exempt it or need it
read that declaration, and nginx's template, which cannot import it, is held to it here."""
from __future__ import annotations

import re

from dockpool.this_machine import ADDRESSES, is_this_machine
from dockpool_api import plain_listener
from support.paths import ROOT

TEMPLATE = (ROOT / "roles" / "provider_api" / "templates" / "nginx.conf.j2").read_text()


def test_only_the_hosts_own_two_addresses_are_this_machine():
    assert [a for a in ("127.0.0.1", "::1", "::ffff:127.0.0.1") if is_this_machine(a)] == ["127.0.0.1", "::1",
                                                                                          "::ffff:127.0.0.1"]
    # The rest of loopback is where a local attacker (and the tests' floods) connect from.
    assert not [a for a in ("127.0.0.5", "127.1.0.1", "::2", "0.0.0.0", "192.0.2.1", "unknown", "") if is_this_machine(a)]


def test_nginx_exempts_exactly_this_machine_from_its_per_source_limit():
    geo = re.search(r"geo \$dockpool_limited \{(.*?)\}", TEMPLATE, re.S)
    assert geo, "the template's geo block is gone"
    exempt = re.findall(r"^\s*(\S+)\s+0;", geo.group(1), re.M)
    assert tuple(exempt) == ADDRESSES


def test_the_front_passes_on_fewer_requests_than_the_api_serves():
    """What the front holds open at the API (requests in progress and idle keep-alive connections)
    stays below the plain listener's total, so the plain port keeps room whatever the front does."""
    total = int(re.search(r"limit_conn dockpool_total (\d+);", TEMPLATE).group(1))
    bodies = int(re.search(r"limit_conn dockpool_bodies (\d+);", TEMPLATE).group(1))
    idle = int(re.search(r"keepalive (\d+);", TEMPLATE).group(1))
    assert bodies < total and total + idle <= plain_listener.CONNECTIONS - 64, (total, idle)
    assert f"\"allowed_in_all\": {total}, \"allowed_sending_a_body\": {bodies}" in TEMPLATE

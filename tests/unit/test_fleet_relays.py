"""The relays of a member behind NAT, as its signed entry names them (fleet/relays.py, docs/nat.md):
their shape, checked whole with the field named; and the first live one, found by real TCP
connects on loopback."""
from __future__ import annotations

import socket

import pytest

from dockpool.errors import InvalidInput
from dockpool_api.fleet import relays
from dockpool_api.fleet.relays import Liveness, RelayPath

ONE = {"address": "203.0.113.5", "api_port": 41000, "ssh_port": 41001, "fleet_port": 41002}


def test_relays_parse_and_render_back_the_same():
    two = [ONE, {**ONE, "address": "relay-2.example.org"}]
    paths = relays.parse(two, "dockpool.relays")
    assert paths == (RelayPath("203.0.113.5", 41000, 41001, 41002), RelayPath("relay-2.example.org", 41000, 41001, 41002))
    assert relays.render(paths) == two


@pytest.mark.parametrize("value, field", [
    ([], "dockpool.relays"),
    ("203.0.113.5", "dockpool.relays"),
    ([ONE] * 9, "dockpool.relays"),
    ([{**ONE, "extra": 1}], "dockpool.relays[0]"),
    ([{k: v for k, v in ONE.items() if k != "ssh_port"}], "dockpool.relays[0]"),
    ([{**ONE, "fleet_port": 0}], "dockpool.relays[0].fleet_port"),
    ([{**ONE, "api_port": True}], "dockpool.relays[0].api_port"),
    ([{**ONE, "address": "not a name; rm -rf"}], "dockpool.relays[0].address"),
    ([{**ONE, "address": "::ffff:127.0.0.1"}], "dockpool.relays[0].address"),
    ([ONE, ONE], "dockpool.relays"),
])
def test_bad_relays_are_refused_naming_the_field(value, field):
    with pytest.raises(InvalidInput) as caught:
        relays.parse(value, "dockpool.relays")
    assert caught.value.field == field


def test_an_entry_without_relays_signs_as_before():
    assert relays.signed_part(()) == []
    assert relays.signed_part(relays.parse([ONE], "r")) == [{"relays": [ONE]}]


def test_the_first_relay_that_answers_is_chosen_and_a_dead_one_is_skipped():
    with socket.create_server(("127.0.0.1", 0)) as listening:
        live_port = listening.getsockname()[1]
        with socket.create_server(("127.0.0.1", 0)) as closed:
            dead_port = closed.getsockname()[1]  # bound, then closed below: nothing listens there
        dead = RelayPath("127.0.0.1", 1, 1, dead_port)
        live = RelayPath("127.0.0.1", 1, 1, live_port)
        probes: list[int] = []

        def probe(address: str, port: int, timeout: float) -> bool:
            probes.append(port)
            return relays._connects(address, port, timeout)

        now = [0.0]
        liveness = Liveness(probe=probe, ttl=10.0, clock=lambda: now[0])
        assert liveness.first_live([dead, live]) == live
        assert liveness.first_live([live, dead]) == live
        assert probes == [dead_port, live_port]  # remembered: no second connect within the ttl
        assert liveness.first_live([dead]) is None
        now[0] = 11.0  # after the ttl the dead relay is asked again
        liveness.first_live([dead, live])
        assert probes[-2:] == [dead_port, live_port]


def test_the_provider_settings_take_its_relays_checked_the_same_way():
    from dockpool_api.config import config_from_dict

    assert config_from_dict({"relays": [ONE]}).relays == (RelayPath("203.0.113.5", 41000, 41001, 41002),)
    assert config_from_dict({"relays": []}).relays == () == config_from_dict({}).relays
    with pytest.raises(InvalidInput) as caught:
        config_from_dict({"relays": [{**ONE, "ssh_port": 70000}]})
    assert caught.value.field == "relays[0].ssh_port"


def test_the_client_reaches_a_relayed_peer_at_its_first_relays_https_port():
    from dockpool_cli.fleet import peer_url, relay_of

    peer = {"Name": "nat-box", "IPV4": "192.168.1.40", "ServerPort": "8088",
            "dockpool": {"relays": [ONE, {**ONE, "address": "198.51.100.9"}]}}
    assert relay_of(peer) == ONE and peer_url(peer) == "https://203.0.113.5:41000"
    public = {"Name": "pub", "IPV4": "192.0.2.20", "ServerPort": "8088", "dockpool": {"fleet_port": 8444}}
    assert relay_of(public) is None and peer_url(public) == "http://192.0.2.20:8088"
    assert relay_of({**peer, "dockpool": {"relays": ["junk"]}}) is None

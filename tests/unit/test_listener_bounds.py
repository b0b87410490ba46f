"""The listeners' bounds per source (issue 34, items 10 and 11): the fleet listener's handshakes
per address, and the plain listener's settings, refused out of range naming the field."""
from __future__ import annotations

import pytest

from dockpool.errors import InvalidInput
from dockpool_api.config import config_from_dict
from dockpool_api.fleet_tls import Handshakes


def test_handshakes_are_bounded_per_source_and_in_all():
    handshakes = Handshakes(total=5, per_source=2)
    assert handshakes.take("192.0.2.1") and handshakes.take("192.0.2.1")
    assert not handshakes.take("192.0.2.1")  # its share is taken
    assert handshakes.take("192.0.2.2") and handshakes.take("192.0.2.2") and handshakes.take("192.0.2.3")
    assert not handshakes.take("192.0.2.4")  # all five under way
    handshakes.give("192.0.2.1")
    assert handshakes.take("192.0.2.4") and not handshakes.take("192.0.2.1")
    for source in ("192.0.2.1", "192.0.2.2", "192.0.2.2", "192.0.2.3", "192.0.2.4"):
        handshakes.give(source)
    assert handshakes.take("192.0.2.1") and handshakes.take("192.0.2.1")


@pytest.mark.parametrize("setting, value", [("connections_per_source", 0), ("connections_per_source", "16"),
                                            ("connections_per_source", True), ("header_timeout", 0),
                                            ("header_timeout", 301), ("header_timeout", "10")])
def test_plain_listener_bounds_out_of_range_are_refused_naming_them(setting, value):
    with pytest.raises(InvalidInput) as raised:
        config_from_dict({setting: value})
    assert raised.value.field == setting and setting in raised.value.message


def test_plain_listener_bounds_have_defaults_and_take_the_operators():
    assert (config_from_dict({}).connections_per_source, config_from_dict({}).header_timeout) == (32, 10.0)
    config = config_from_dict({"connections_per_source": 4, "header_timeout": 5})
    assert (config.connections_per_source, config.header_timeout) == (4, 5.0)

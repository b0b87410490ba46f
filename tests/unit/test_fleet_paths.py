"""Fleet URLs are built in one place, segment by segment (issue 34, item 15): no value a client
sends can change the path a member is asked for."""
from __future__ import annotations

import ssl

import pytest

from dockpool_api.fleet import transport


def test_each_segment_is_quoted_whole():
    assert transport.route_path("v1", "moves", "0123456789abcdef", "pull") == "/v1/moves/0123456789abcdef/pull"
    assert transport.route_path("v1", "moves", "..%2F..%2Ffleet%2Fexchange", "pull") == \
        "/v1/moves/..%252F..%252Ffleet%252Fexchange/pull"
    assert transport.route_path("v1", "moves", "../../fleet/exchange", "pull") == "/v1/moves/..%2F..%2Ffleet%2Fexchange/pull"
    assert transport.route_path("v1", "moves", "a b\r\nX: y?#", "pull") == "/v1/moves/a%20b%0D%0AX%3A%20y%3F%23/pull"


@pytest.mark.parametrize("segment", ["..", ".", ""])
def test_a_segment_that_climbs_or_vanishes_is_refused(segment):
    with pytest.raises(ValueError):
        transport.route_path("v1", "moves", segment, "pull")


@pytest.mark.parametrize("raw", ["/v1/moves/../../fleet/exchange/pull", "/v1/moves/a b/pull", "v1/moves",
                                 "/v1/moves/x\r\nHost: evil/pull", "/v1/moves//pull", "/v1/moves/x?y=1"])
def test_a_request_takes_only_a_path_the_builder_made(raw):
    client = transport.HttpTransport(ssl.create_default_context())
    with pytest.raises(ValueError):  # before any connection: the address is never dialled
        client.open(transport.Endpoint("127.0.0.1", 9, "member"), transport.Call("GET", raw))

import pytest

from dockpool.cputopology import Topology
from dockpool.errors import CapacityExhausted, InvalidInput
from dockpool.placement import (
    allocate_dedicated,
    allocate_ports,
    check_cpu_share,
    port_is_bindable,
    shared_pool,
)
from dockpool.policy import PortRange

HT4 = Topology(cores=((0, 4), (1, 5), (2, 6), (3, 7)))  # 4 cores, 2 threads each
FLAT2 = Topology(cores=((0,), (1,)))
MIB = 1024**2


@pytest.mark.parametrize(
    "used, count, expected",
    [(set(), 1, [40000]), ({40000}, 2, [40001, 40002]), ({40001}, 3, [40000, 40002, 40003]), (set(), 0, [])],
)
def test_ports_lowest_free_first(used, count, expected):
    assert allocate_ports(PortRange(40000, 40009), used, count) == expected


def test_ports_skip_what_the_host_probe_reports_busy():
    assert allocate_ports(PortRange(40000, 40009), set(), 2, is_free=lambda p: p % 2 == 1) == [40001, 40003]


def test_ports_exhausted_names_the_range():
    with pytest.raises(CapacityExhausted) as info:
        allocate_ports(PortRange(40000, 40002), {40000, 40001}, 2)
    assert "40000-40002" in info.value.message and info.value.detail == {"needed": 2, "free": 1}


@pytest.mark.parametrize("bad", [(80, 90), (50000, 40000), (1024, 70000)])
def test_port_range_must_be_sane(bad):
    with pytest.raises(InvalidInput):
        PortRange(*bad)


@pytest.mark.parametrize("text, expected", [("40000-40999", (40000, 40999)), ([41000, 41010], (41000, 41010)), ({"start": 42000, "end": 42001}, (42000, 42001))])
def test_port_range_parse(text, expected):
    parsed = PortRange.parse(text)
    assert (parsed.start, parsed.end) == expected


@pytest.mark.parametrize("text", ["40000", "a-b", [1], None, "40000-"])
def test_port_range_parse_rejects(text):
    with pytest.raises(InvalidInput):
        PortRange.parse(text)


def test_port_probe_sees_a_listening_socket():
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_is_bindable("127.0.0.1")(port) is False
    assert port_is_bindable("127.0.0.1")(port) is True


@pytest.mark.parametrize(
    "busy, cores, reserve, expected",
    [
        (set(), 1, 1, [3, 7]),  # highest core first, siblings together
        (set(), 2, 1, [2, 3, 6, 7]),
        ({3, 7}, 1, 1, [2, 6]),
        ({3, 7, 2, 6}, 2, 0, [0, 1, 4, 5]),
        ({7}, 1, 1, [2, 6]),  # a core with one busy sibling is not free
    ],
)
def test_dedicated_cores_keep_siblings_together_and_never_overlap(busy, cores, reserve, expected):
    chosen = allocate_dedicated(HT4, busy, cores, reserve)
    assert chosen == expected
    assert not set(chosen) & busy


def test_dedicated_beyond_the_host_is_invalid_input():
    with pytest.raises(InvalidInput) as info:
        allocate_dedicated(HT4, set(), 4, 1)
    assert info.value.field == "cpus" and info.value.detail == {"max": 3}


def test_dedicated_pool_exhausted_is_capacity():
    with pytest.raises(CapacityExhausted):
        allocate_dedicated(HT4, {1, 5, 2, 6, 3, 7}, 1, 1)
    assert allocate_dedicated(HT4, {1, 5, 2, 6, 3, 7}, 1, 0) == [0, 4]


def test_shared_pool_is_everything_not_dedicated():
    assert shared_pool(HT4, {3, 7}) == [0, 1, 2, 4, 5, 6]
    assert shared_pool(FLAT2, set()) == [0, 1]


@pytest.mark.parametrize("share, pool, error", [(0.5, [0], None), (2, [0, 1], None), (3, [0, 1], InvalidInput), (0.5, [], CapacityExhausted)])
def test_cpu_share_fits_the_pool(share, pool, error):
    if error:
        with pytest.raises(error):
            check_cpu_share(share, pool)
    else:
        check_cpu_share(share, pool)


def test_ports_given_back_first_come_before_the_lowest_free_ones():
    """A client's own held ports (released, still reachable only by its old jump connections)."""
    assert allocate_ports(PortRange(40000, 40009), {40001}, 2, first={40007, 40003, 40100}) == [40003, 40007]
    assert allocate_ports(PortRange(40000, 40009), {40001}, 3, first={40007}) == [40007, 40000, 40002]

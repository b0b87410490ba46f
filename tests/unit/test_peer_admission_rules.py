"""The rule for posted P2PRC peers (admission.py), as a pure function: no address is contacted."""
from __future__ import annotations

import pytest

from dockpool.networks import NetworkRule
from dockpool_api.fleet.admission import PeerAdmission, Surroundings
from dockpool_api.fleet.members import Member
from dockpool_api.fleet.wire import parse_entry

OWN = "93.184.216.34"  # the provider's public address in these tests
HERE = Surroundings(networks=("172.17.0.0/16", "fd00:dead::/64"), addresses=frozenset({OWN}), published=frozenset({40001}))


def entry(address: str, port: int = 8088) -> Member:
    key = "IPV6" if ":" in address else "IPV4"
    return parse_entry({key: address, "ServerPort": str(port)})


def admission(*opened: str) -> PeerAdmission:
    """The default deny list (loopback, link-local, ...) goes with opening, as an operator must clear it too."""
    rule = NetworkRule(allow=("0.0.0.0/0", "::/0", *opened), **({"deny": ()} if opened else {}))
    return PeerAdmission(rule, frozenset({22000, 8444}), lambda: HERE)


def test_a_public_peer_on_an_api_port_is_taken():
    assert admission().refusal(entry("8.8.8.8")) is None
    assert admission().refusal(entry("2001:4860:4860::8888", 9000)) is None


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.1.9", "100.64.0.1", "127.0.0.2", "169.254.169.254",
                                     "fd12::1", "198.51.100.7"])
def test_private_loopback_and_link_local_need_their_network_named(address):
    field, why = admission().refusal(entry(address))
    assert field in ("IPV4", "IPV6") and "peer_networks" in why
    network = {"10.1.2.3": "10.0.0.0/8", "192.168.1.9": "192.168.1.0/24", "100.64.0.1": "100.64.0.0/10",
               "127.0.0.2": "127.0.0.0/8", "169.254.169.254": "169.254.0.0/16", "fd12::1": "fd00::/8",
               "198.51.100.7": "198.51.100.0/24"}[address]
    assert admission(network).refusal(entry(address)) is None


def test_the_engines_networks_are_never_peers_whatever_is_opened():
    for address in ("172.17.0.5", "172.17.0.1", "fd00:dead::5"):
        field, why = admission("172.16.0.0/12", "fd00::/8").refusal(entry(address))
        assert field in ("IPV4", "IPV6") and "network of this provider's engine" in why


def test_its_own_address_needs_naming_and_its_instances_ports_never():
    assert admission().refusal(entry(OWN))[1].startswith(f"{OWN} is this provider's own address")
    assert admission(f"{OWN}/32").refusal(entry(OWN)) is None
    assert admission(f"{OWN}/32").refusal(entry(OWN, 40001))[0] == "ServerPort"  # an instance's published sshd
    assert admission("127.0.0.0/8").refusal(entry("127.0.0.1", 40001))[0] == "ServerPort"
    assert admission().refusal(entry("8.8.8.8", 40001)) is None  # someone else's port 40001


@pytest.mark.parametrize("port", [22, 25, 6667, 22000, 8444])
def test_other_services_ports_are_refused(port):
    assert admission().refusal(entry("8.8.8.8", port))[0] == "ServerPort"


def test_a_members_address_is_reached_over_the_fleet_only():
    field, why = admission().refusal(entry("8.8.8.8", 9000), [("8.8.8.8", "b")])
    assert field == "IPV4" and "fleet member b" in why


@pytest.mark.parametrize("address, inner", [
    ("64:ff9b::7f00:1", "127.0.0.1"), ("64:ff9b::a01:203", "10.1.2.3"), ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
    ("2002:7f00:1::1", "127.0.0.1"), ("2002:c0a8:109::1", "192.168.1.9"), ("2002:ac11:5::1", "172.17.0.5"),
    ("64:ff9b::5db8:d822", OWN), ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "10.0.0.1"),
])
def test_ipv6_addresses_wrapping_a_refused_ipv4_address_are_refused(address, inner):
    """NAT64 and 6to4 addresses count as global in Python 3.11, whatever IPv4 address they lead to."""
    field, why = admission().refusal(entry(address))
    assert field == "IPV6" and f"wraps the IPv4 address {inner}" in why and "peer_networks" in why, why
    assert admission(f"{address}/128").refusal(entry(address)) is None  # named on purpose by the operator


def test_ipv6_addresses_wrapping_a_public_ipv4_address_are_taken():
    assert admission().refusal(entry("64:ff9b::808:808")) is None  # NAT64 to 8.8.8.8
    assert admission().refusal(entry("2002:808:808::1")) is None  # 6to4 from 8.8.8.8

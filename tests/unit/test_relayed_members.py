"""A member behind NAT (docs/nat.md): its signed entry names its relays, no relayer can add,
change or drop one, and the one transport reaches it through the first relay that answers,
expecting the same certificate name as on a direct path. Real Ed25519 keys, real sockets on
loopback."""
from __future__ import annotations

import copy
import socket

from dockpool.networks import NetworkRule
from dockpool_api.config import config_from_dict
from dockpool_api.fleet import relays
from dockpool_api.fleet.members import Heard, view
from dockpool_api.fleet.membership import Membership, Signer, signature_valid
from dockpool_api.fleet.transport import Endpoint, reach
from dockpool_api.fleet.wire import parse_entry, render_entry

PATHS = [{"address": "203.0.113.5", "api_port": 41000, "ssh_port": 41001, "fleet_port": 41002},
         {"address": "198.51.100.9", "api_port": 41000, "ssh_port": 41001, "fleet_port": 41002}]


def nat_box(paths: list[dict]) -> dict:
    signer = Signer(None)
    member = parse_entry({"Name": "nat-box", "IPV4": "192.168.1.40", "ServerPort": "8088"})
    return render_entry(signer.sign(member, 3, 8444, paths=relays.parse(paths, "relays")))


def test_the_signed_entry_carries_the_relays_and_verifies():
    wire = nat_box(PATHS)
    assert wire["dockpool"]["relays"] == PATHS
    member = parse_entry(copy.deepcopy(wire))
    assert signature_valid(member) and member.relays == relays.parse(PATHS, "relays")
    assert view(Heard(member, "member", 0.0, None))["relays"] == PATHS


def test_no_relayer_can_add_change_or_drop_a_relay():
    wire = nat_box(PATHS)
    for tampered in ({"address": "192.0.2.66"}, {"fleet_port": 41012}):
        forged = copy.deepcopy(wire)
        forged["dockpool"]["relays"][0].update(tampered)
        assert not signature_valid(parse_entry(forged))
    dropped = copy.deepcopy(wire)
    del dropped["dockpool"]["relays"]
    assert not signature_valid(parse_entry(dropped))
    added = copy.deepcopy(wire)
    added["dockpool"]["relays"].append({**PATHS[0], "address": "192.0.2.66"})
    assert not signature_valid(parse_entry(added))


def test_an_entry_without_relays_is_on_the_wire_as_before():
    signer = Signer(None)
    member = parse_entry({"Name": "public-box", "IPV4": "192.0.2.20", "ServerPort": "8088"})
    wire = render_entry(signer.sign(member, 1, 8444))
    assert "relays" not in wire["dockpool"] and signature_valid(parse_entry(wire))


def test_the_transport_reaches_a_relayed_member_through_the_first_relay_that_answers():
    with socket.create_server(("127.0.0.1", 0)) as live:
        with socket.create_server(("127.0.0.1", 0)) as closed:
            dead_port = closed.getsockname()[1]
        live_port = live.getsockname()[1]
        paths = [{"address": "127.0.0.1", "api_port": 1, "ssh_port": 2, "fleet_port": port} for port in (dead_port, live_port)]
        member = parse_entry(nat_box(paths))
        # The same certificate name as a direct path expects: the member's own.
        assert reach(member, NetworkRule(allow=("127.0.0.0/8",), deny=()))  # the test opens loopback == Endpoint("127.0.0.1", live_port, "nat-box")
    public = parse_entry(render_entry(Signer(None).sign(parse_entry({"Name": "pub", "IPV4": "192.0.2.20",
                                                                         "ServerPort": "8088"}), 1, 8444)))
    assert reach(public) == Endpoint("192.0.2.20", 8444, "pub")


def test_the_provider_signs_its_relays_from_its_settings(tmp_path):
    config = config_from_dict({"relays": PATHS})
    me = parse_entry({"Name": "nat-box", "IPV4": "192.168.1.40", "ServerPort": "8088"})
    table = Membership(None, me, relays=config.relays)
    own = table.own()
    assert own["dockpool"]["relays"] == PATHS and signature_valid(parse_entry(own))
    assert config_from_dict({"relays": []}).relays == ()

"""A member is parsed once from P2PRC's wire form and rendered back from it, byte for byte as
P2PRC's peers and tables saw it before members were typed; entries signed before (by the code
that signed dicts) still verify. The expected bytes below were produced by that earlier code."""
from __future__ import annotations

import json

import pytest

from dockpool.errors import InvalidInput
from dockpool_api.fleet.members import Heard, Member, view
from dockpool_api.fleet.membership import Signer, signature_valid
from dockpool_api.fleet.wire import p2prc_table, parse_entry, parse_table, render_entry, render_table

POSTED = {"ip_address": [
    {"Name": "p2prc-box", "MachineUsername": None, "IPV4": "198.51.100.7", "IPV6": "2001:0db8:0000::0001",
     "Latency": 1234.6, "Download": 12, "Upload": 3.5, "ServerPort": "8088", "UDPServerPort": "", "BareMetalSSHPort": "22",
     "NAT": "True", "EscapeImplementation": "ngrok", "ProxyServer": "False", "UnSafeMode": True,
     "PublicKey": "ssh-ed25519 AAAA x\n", "CustomInformation": "lab", "Extra": "dropped"},
    {"IPV4": "203.0.113.9", "ServerPort": 8090},
]}
# What P2PRC's /IpTable answered for POSTED before (peers.validate_table, then P2PRC's FIELDS).
P2PRC_BYTES = (
    '{"ip_address": [{"Name": "p2prc-box", "MachineUsername": "", "IPV4": "198.51.100.7", "IPV6": "2001:db8::1", '
    '"Latency": 1235, "Download": 12, "Upload": 3.5, "ServerPort": "8088", "UDPServerPort": "", "BareMetalSSHPort": "22", '
    '"NAT": true, "EscapeImplementation": "ngrok", "ProxyServer": false, "UnSafeMode": true, "PublicKey": '
    '"ssh-ed25519 AAAA x\\n", "CustomInformation": "lab"}, {"Name": "", "MachineUsername": "", "IPV4": "203.0.113.9", '
    '"IPV6": "", "Latency": 0, "Download": 0, "Upload": 0, "ServerPort": "8090", "UDPServerPort": "", '
    '"BareMetalSSHPort": "", "NAT": false, "EscapeImplementation": "", "ProxyServer": false, "UnSafeMode": false, '
    '"PublicKey": "", "CustomInformation": ""}]}')
# Entries a provider signed with the code that signed dicts (one draining): they must keep verifying.
SIGNED_BEFORE = [
    '{"Name": "alpha", "MachineUsername": "iaas", "EscapeImplementation": "", "PublicKey": "", "CustomInformation": "", '
    '"IPV4": "192.0.2.10", "IPV6": "", "ServerPort": "8088", "UDPServerPort": "", "BareMetalSSHPort": "22000", '
    '"Latency": 0, "Download": 7, "Upload": 2.25, "NAT": true, "ProxyServer": false, "UnSafeMode": false, "dockpool": '
    '{"key": "hQ1Zzg3tSIHPI+fn7AZZwofcPr7Hq2fTpPzT+NuVd+s=", "version": 1765000000123, "signature": '
    '"G1VqKmriV4fQcVOHiuqGSWf8Nw8JUEanH+6RFcn3lmWbDf+TfpqeiBSDDupUaIAUe5vRPZ2QXcwlu4ByYC7tDA==", "age": 0.0, '
    '"fleet_port": 8444}}',
    '{"Name": "alpha", "MachineUsername": "iaas", "EscapeImplementation": "", "PublicKey": "", "CustomInformation": "", '
    '"IPV4": "192.0.2.10", "IPV6": "", "ServerPort": "8088", "UDPServerPort": "", "BareMetalSSHPort": "22000", '
    '"Latency": 0, "Download": 7, "Upload": 2.25, "NAT": true, "ProxyServer": false, "UnSafeMode": false, "dockpool": '
    '{"key": "hQ1Zzg3tSIHPI+fn7AZZwofcPr7Hq2fTpPzT+NuVd+s=", "version": 1765000000999, "signature": '
    '"MLa0CjwINZqZrYqkpM77VqTz5FzKA7D/H2Z0BsABsllcGqsR8DUW9EfEhMpVBbl9t02kn7dlqlElms1pl+0ECA==", "age": 0.0, '
    '"fleet_port": 8444, "draining": true}}',
]


def test_p2prc_table_renders_the_bytes_p2prc_saw_before():
    assert json.dumps(p2prc_table(parse_table(POSTED, 10))) == P2PRC_BYTES


def test_a_parsed_member_is_typed_and_renders_back_to_what_it_was_parsed_from():
    box, bare = parse_table(POSTED, 10)
    assert (box.name, box.address, box.ipv6, box.server_port, box.ssh_port, box.udp_port) == \
        ("p2prc-box", "198.51.100.7", "2001:db8::1", 8088, 22, None)
    assert (box.nat, box.proxy, box.unsafe, box.latency, box.download, box.upload) == (True, False, True, 1235, 12, 3.5)
    assert box.seal is None and not box.signed and box.peer_key == ("198.51.100.7", 8088)
    assert bare.name == "" and bare.server_port == 8090  # a number where P2PRC writes text: read, rendered as text
    for member in (box, bare):
        assert parse_entry(render_entry(member)) == member
    assert render_table([box]) == {"ip_address": [render_entry(box)]}


@pytest.mark.parametrize("raw", SIGNED_BEFORE)
def test_entries_signed_before_members_were_typed_still_verify_and_render_byte_for_byte(raw):
    member = parse_entry(json.loads(raw))
    assert member.signed and signature_valid(member)
    assert member.draining == ('"draining": true' in raw) and member.seal.fleet_port == 8444
    assert sorted(render_entry(member).items()) == sorted(json.loads(raw).items())
    assert json.dumps(render_entry(member), sort_keys=True) == json.dumps(json.loads(raw), sort_keys=True)
    changed = parse_entry({**json.loads(raw), "ServerPort": "9999"})
    assert not signature_valid(changed)  # the fields are covered
    undrained = {**json.loads(raw)}
    undrained["dockpool"] = {k: v for k, v in undrained["dockpool"].items() if k != "draining"}
    assert signature_valid(parse_entry(undrained)) is ('"draining"' not in raw)  # and so is the flag


def test_a_member_signed_now_verifies_as_the_wire_carries_it(tmp_path):
    signer = Signer(str(tmp_path / "membership.key"))
    member = signer.sign(parse_entry({"Name": "beta", "IPV4": "192.0.2.11", "ServerPort": "8088"}), 42, 8444)
    wired = parse_entry(json.loads(json.dumps(render_entry(member.aged(3.25)))))
    assert signature_valid(wired) and wired.age == 3.25 and wired.version == 42 and wired.key == signer.public
    assert wired.aged(0.0) == member  # the age is carried, never signed


@pytest.mark.parametrize("field, value", [("ServerPort", "0"), ("ServerPort", "²"), ("ServerPort", True),
                                          ("UDPServerPort", "65536"), ("IPV4", "::1"), ("NAT", 1)])
def test_bad_fields_are_refused_naming_the_field(field, value):
    with pytest.raises(InvalidInput) as refused:
        parse_entry({"Name": "x", "IPV4": "192.0.2.1", "ServerPort": "8088", field: value}, 3)
    assert refused.value.field == f"ip_address[3].{field}"


def test_the_view_names_a_peer_as_v1_fleet_always_did():
    member = parse_entry({"Name": "gamma", "IPV6": "2001:db8::5", "ServerPort": "8090"})
    assert view(Heard(member, "p2prc", 12.345, None)) == {
        "name": "gamma", "address": "2001:db8::5", "port": 8090, "heard_seconds_ago": 12.3, "answers": None,
        "tier": "p2prc", "signed": False, "draining": False}
    assert isinstance(member, Member)

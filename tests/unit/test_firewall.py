"""The firewall's rules as text (what iptables-restore is given), and its settings."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from dockpool.errors import InvalidInput
from dockpool.firewall import FirewallSettings, ipv6_rules, policy_rules, tenant_rules


def test_egress_order_replies_tenants_allowed_dns_denied_then_internet():
    settings = FirewallSettings.from_dict({"allow": ["10.231.0.0/24"], "dns": ["10.255.255.53/32"],
                                           "extra_deny": ["203.0.113.0/24"], "host_ports": [8088, 22000]})
    lines = [line for line in policy_rules(settings).splitlines() if line.startswith("-A DOCKPOOL-EGRESS")]
    rules = [line.split("DOCKPOOL-EGRESS ", 1)[1] for line in lines]
    assert rules[0] == "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    assert rules[1] == "-o docker0 -j DOCKPOOL-TENANTS"
    assert rules[2].startswith("-o docker0 -p tcp -j REJECT") and rules[3].startswith("-o docker0 -j REJECT")
    assert rules.index("-d 10.231.0.0/24 -j RETURN") < rules.index("-d 10.0.0.0/8 -p tcp -j REJECT --reject-with tcp-reset")
    assert rules.index("-d 10.255.255.53/32 -p udp --dport 53 -j RETURN") < rules.index("-d 10.0.0.0/8 -j REJECT --reject-with icmp-admin-prohibited")
    for net in ("169.254.0.0/16", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "224.0.0.0/4",
                "203.0.113.0/24"):
        assert f"-d {net} -p tcp -j REJECT --reject-with tcp-reset" in rules
    assert rules[-1] == "-j RETURN"


def test_the_host_is_reached_only_on_the_client_ports():
    text = policy_rules(FirewallSettings(host_ports=(8088, 8443, 22000)))
    inbound = [line.split("DOCKPOOL-INPUT ", 1)[1] for line in text.splitlines() if line.startswith("-A DOCKPOOL-INPUT")]
    assert inbound == ["-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
                       "-p tcp -m multiport --dports 8088,8443,22000 -j RETURN",
                       "-p tcp -j REJECT --reject-with tcp-reset", "-j REJECT --reject-with icmp-admin-prohibited"]


def test_tenant_pairs_are_one_clients_only():
    text = tenant_rules([("alice", "172.17.0.2"), ("alice", "172.17.0.3"), ("bob", "172.17.0.4"), ("carol", "")])
    pairs = [line for line in text.splitlines() if line.startswith("-A")]
    assert pairs == ["-A DOCKPOOL-TENANTS -s 172.17.0.2/32 -d 172.17.0.3/32 -j ACCEPT",
                     "-A DOCKPOOL-TENANTS -s 172.17.0.3/32 -d 172.17.0.2/32 -j ACCEPT"]
    assert text.startswith("*filter\n:DOCKPOOL-TENANTS - [0:0]\n") and text.endswith("COMMIT\n")


@pytest.mark.parametrize("settings, field", [
    ({"allow": ["lab"]}, "allow"),
    ({"allow": "10.0.0.0/8"}, "allow"),
    ({"extra_deny": ["fd00::/8"]}, "extra_deny"),
    ({"dns": ["10.0.0.0/8"]}, "dns"),
    ({"host_ports": [0]}, "host_ports"),
    ({"limited_ports": [8443, "x"]}, "limited_ports"),
    ({"bridge": "docker0; reboot"}, "bridge"),
    ({"allowed": []}, "allowed"),
])
def test_bad_settings_name_their_field(settings, field):
    with pytest.raises(InvalidInput) as info:
        FirewallSettings.from_dict(settings)
    assert info.value.field == field


def test_ipv6_from_the_bridge_is_refused_but_replies_and_the_kernel_accepts_the_rules():
    text = ipv6_rules()
    assert [line for line in text.splitlines() if "DOCKPOOL-SOURCES" not in line] == ["*filter", ":DOCKPOOL-IPV6 - [0:0]",
                                 "-A DOCKPOOL-IPV6 -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
                                 "-A DOCKPOOL-IPV6 -p tcp -j REJECT --reject-with tcp-reset",
                                 "-A DOCKPOOL-IPV6 -j REJECT --reject-with icmp6-adm-prohibited", "COMMIT"]
    if shutil.which("ip6tables-restore") is None or os.geteuid() != 0:
        pytest.skip("needs ip6tables-restore as root")
    checked = subprocess.run(["ip6tables-restore", "--test", "--noflush"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_each_limited_port_counts_connections_per_source_except_this_machines_own():
    settings = FirewallSettings.from_dict({"limited_ports": [8088, 8443, 8444], "connections_per_source": 48})
    v4 = [line for line in policy_rules(settings).splitlines() if "DOCKPOOL-SOURCES" in line]
    assert v4 == [":DOCKPOOL-SOURCES - [0:0]", "-A DOCKPOOL-SOURCES -s 127.0.0.1 -j RETURN",
                  *[f"-A DOCKPOOL-SOURCES -p tcp --dport {port} --syn -m connlimit --connlimit-above 48 "
                    "--connlimit-mask 32 -j REJECT --reject-with tcp-reset" for port in (8088, 8443, 8444)]]
    v6 = [line for line in ipv6_rules(settings).splitlines() if "DOCKPOOL-SOURCES" in line]
    assert v6[1] == "-A DOCKPOOL-SOURCES -s ::1 -j RETURN" and all("--connlimit-mask 64" in r for r in v6[2:]), v6
    assert len(v6) == 5
    # The rest of loopback (where the tests' floods come from) is counted like anyone.
    assert not [line for line in v4 + v6 if "127.0.0.0/8" in line]


@pytest.mark.parametrize("value", [0, -1, "64", True, 70000])
def test_a_bad_share_per_source_names_its_field(value):
    with pytest.raises(InvalidInput) as info:
        FirewallSettings.from_dict({"connections_per_source": value})
    assert info.value.field == "connections_per_source"


def test_the_kernel_accepts_the_per_source_rules():
    if shutil.which("iptables-restore") is None or os.geteuid() != 0:
        pytest.skip("needs iptables-restore as root")
    settings = FirewallSettings.from_dict({"limited_ports": [8088, 8443], "connections_per_source": 64})
    for program, text in (("iptables-restore", policy_rules(settings)), ("ip6tables-restore", ipv6_rules(settings))):
        checked = subprocess.run([program, "--test", "--noflush"], input=text, capture_output=True, text=True)
        assert checked.returncode == 0, (program, checked.stderr)

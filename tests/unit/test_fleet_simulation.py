"""The fleet simulation (bench/fleet_sim.py) at N = 100, from a chain: the real membership and
gossip code over an in-process transport, on a simulated clock. Its goals are the protocol's:
every table complete within ceil(log2 N) + 2 rounds, a quiet member sending at most 2 KiB a
round (here: O(1), the same few hundred bytes whatever N), a killed member gone from every
table within the expiry plus 3 rounds, and a change reaching every table."""
from __future__ import annotations

import random

from bench import fleet_sim


def test_a_hundred_members_converge_stay_quiet_spread_a_change_and_bury_the_dead():
    result = fleet_sim.run((100,))
    row = result["sizes"][0]
    assert row["start"] == "chain" and row["met"] == {"converge": True, "quiet": True, "killed": True}, row
    assert row["converge_rounds"] <= 9 and row["join_rounds"] <= 9
    assert row["quiet_bytes_per_member_round_max"] <= 512  # a root hash each way, no table
    assert row["change_rounds"] is not None and 0 < row["change_bytes_per_member"] < 16 * 1024
    assert 11 <= row["killed_gone_rounds"] <= 15  # not before the expiry counted from a round before it was noticed
    assert "goals met: yes" in fleet_sim.report(result)


def test_a_member_one_member_cannot_reach_is_probed_through_others_and_never_suspected():
    rng = random.Random(3)
    fleet = fleet_sim.Fleet()
    fleet_sim.form(fleet, 20)
    fleet.cut = {(0, 7), (7, 0)}  # p0 and p7 cannot reach each other; everyone else reaches both
    for _ in range(30):  # 150 simulated seconds: more than two expiries
        fleet.round(rng)
    assert all(n.table.version_of("p7") is not None and n.table.version_of("p0") is not None for n in fleet.nodes)
    assert all(n.table.suspicion("p7") is None for n in fleet.nodes)


def test_a_member_nobody_can_reach_but_that_calls_out_refutes_its_suspicions_and_stays():
    # SWIM's answer (memberlist's too): it is alive, it hears it is suspected, it signs anew. The
    # cost is churn: suspicions and refutations spread as news while nobody can reach it (a
    # provider behind NAT is reached through a relay instead, issue 33).
    rng = random.Random(4)
    fleet = fleet_sim.Fleet()
    fleet_sim.form(fleet, 20)
    first = fleet.nodes[7].table.own_version()
    fleet.cut = {(i, 7) for i in range(20)}  # p7 still calls out; nobody reaches it
    held = []
    for _ in range(30):  # 150 simulated seconds: more than two expiries
        fleet.round(rng)
        held.append(sum(n.table.version_of("p7") is not None for n in fleet.nodes))
    assert fleet.nodes[7].table.own_version() > first  # it refuted
    assert held == [20] * 30  # and never left a table


def test_our_own_busy_checks_of_new_members_never_make_us_suspect_the_member_we_exchanged_with():
    fleet = fleet_sim.Fleet()
    fleet_sim.form(fleet, 3)
    newcomer = fleet.add(None)
    fleet.nodes[1].table.take([newcomer.table.own()])  # p1 knows a member p0 has not checked yet
    fleet.cut = {(2, 1)}  # and p2, the one it could ask to probe p1, cannot reach p1
    me = fleet.nodes[0]
    assert me.table._checks.acquire(blocking=False)  # p0 is checking as many new members as it allows
    p1 = me.table.member("p1")
    assert p1 is not None
    me.gossip._exchange_with(p1)
    assert me.table.suspicion("p1") is None and me.table.version_of("p3") is None  # busy here: no verdict on p1
    me.table._checks.release()
    me.gossip._exchange_with(p1)
    assert me.table.version_of("p3") is not None  # checked and taken once a slot is free

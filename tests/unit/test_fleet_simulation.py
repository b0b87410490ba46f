"""The fleet simulation (bench/fleet_sim.py) at N = 100, from a chain: the real membership and
gossip code over an in-process transport, on a simulated clock. Its goals are the protocol's:
every table complete within ceil(log2 N) + 2 rounds, a quiet member sending at most 2 KiB a
round (here: O(1), the same few hundred bytes whatever N), a killed member gone from every
table within the expiry plus 3 rounds, and a change reaching every table."""
from __future__ import annotations

from bench import fleet_sim


def test_a_hundred_members_converge_stay_quiet_spread_a_change_and_bury_the_dead():
    result = fleet_sim.run((100,))
    row = result["sizes"][0]
    assert row["start"] == "chain" and row["met"] == {"converge": True, "quiet": True, "killed": True}, row
    assert row["converge_rounds"] <= 9 and row["join_rounds"] <= 9
    assert row["quiet_bytes_per_member_round_max"] <= 512  # a root hash each way, no table
    assert row["change_rounds"] is not None and 0 < row["change_bytes_per_member"] < 16 * 1024
    assert 12 <= row["killed_gone_rounds"] <= 15  # not before its suspicion ran the expiry; not long after
    assert "goals met: yes" in fleet_sim.report(result)

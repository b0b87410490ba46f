"""Every benchmark once with tiny counts, so the benchmarks cannot rot.
(Their figures are not checked here: speed is measured by `make bench`, not by tests.)"""
from __future__ import annotations

import pytest

from bench.__main__ import BENCHMARKS, run_one

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_runs_with_tiny_counts(name):
    module, _, smoke = BENCHMARKS[name]
    result = run_one(name, smoke=True)
    assert result["smoke"] is True and "met" in result
    text = module.report(result)
    assert text.strip() and "\n" in text
    # Each check below first names the rows it expects, so that an empty result cannot pass it.
    if name == "parallel_create":
        assert [level["concurrency"] for level in result["levels"]] == list(smoke["levels"])
        assert all(level["failed"] == 0 and level["distinct_ports"] for level in result["levels"])
    if name == "throughput":  # every route answered, HTTPS through the front included
        assert "https /v1/specs" in result["routes"] and "bare" in result["routes"]
        assert all(set(by) == {str(users) for users in smoke["levels"]} for by in result["routes"].values())
        assert all(r["requests"] > 0 and r["failures"] == 0 for by in result["routes"].values() for r in by.values())
    if name == "provisioning":
        assert result["fleets"][0]["second_changed"] == 0
    if name == "replicas":  # a refresh ships what changed, not the whole instance again
        assert [c["changed_mib"] for c in result["changes"]] == list(smoke["changes_mib"])
        assert all(c["changed_mib"] * 1024**2 <= c["shipped_bytes"] < c["full_bytes"] / 4 for c in result["changes"])

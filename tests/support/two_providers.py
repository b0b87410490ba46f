"""The tests' name for dockpool_dev.two_providers, which the benchmarks share (one copy, in the developers' tools)."""
from dockpool_dev.two_providers import FLEET, FLEET_PORT, MEMBERS, SOURCE, SPARE, TARGET, Provider, three_providers, two_providers

__all__ = ["FLEET", "FLEET_PORT", "MEMBERS", "SOURCE", "SPARE", "TARGET", "Provider", "three_providers", "two_providers"]

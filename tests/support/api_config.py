"""The tests' name for dockpool_dev.api_config, which the benchmarks share (one copy, in the developers' tools)."""
from dockpool_dev.api_config import LIMITS, TOKENS, make_config, remove_client_instances, update_policy

__all__ = ["LIMITS", "TOKENS", "make_config", "remove_client_instances", "update_policy"]

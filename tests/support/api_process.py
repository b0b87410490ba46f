"""The tests' name for dockpool_dev.api_process, which the benchmarks share (one copy, in the developers' tools)."""
from dockpool_dev.api_process import api_process, free_port, wait_until_up

__all__ = ["api_process", "free_port", "wait_until_up"]

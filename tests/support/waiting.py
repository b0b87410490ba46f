"""The tests' name for dockpool_dev.waiting, which the benchmarks share (one copy, in the developers' tools)."""
from dockpool_dev.waiting import until

__all__ = ["until"]

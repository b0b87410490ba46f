"""The tests' name for dockpool_dev.cli, which the benchmarks share (one copy, in the developers' tools)."""
from dockpool_dev.cli import DOCKPOOL, cli

__all__ = ["DOCKPOOL", "cli"]

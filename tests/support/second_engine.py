"""The tests' name for dockpool_dev.second_engine, which the benchmarks share (one copy, in the developers' tools)."""
from dockpool_dev.second_engine import BRIDGE, HOST, NAME, SOCKET, SUBNET, ensure, restart

__all__ = ["BRIDGE", "HOST", "NAME", "SOCKET", "SUBNET", "ensure", "restart"]

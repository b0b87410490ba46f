"""The tests' name for dockpool_dev.ssh, which the benchmarks share (one copy, in the developers' tools)."""
from dockpool_dev.ssh import BASE_OPTIONS, make_keypair, ssh_password_attempt, ssh_run

__all__ = ["BASE_OPTIONS", "make_keypair", "ssh_password_attempt", "ssh_run"]

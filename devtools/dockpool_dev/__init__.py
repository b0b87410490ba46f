"""Developers' tools, never shipped to a provider: a CA for test certificates (devca) and a
fleet of API processes on this machine's loopback addresses (localfleet)."""

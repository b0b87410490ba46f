"""The tests' name for dockpool_dev.tls_front, which the benchmarks share (one copy, in the developers' tools)."""
from dockpool_dev.tls_front import ROLE_DEFAULTS, TEMPLATE, Front, fingerprint_of, render, self_signed, signed_by_a_ca, tls_front

__all__ = ["Front", "ROLE_DEFAULTS", "TEMPLATE", "fingerprint_of", "render", "self_signed", "signed_by_a_ca", "tls_front"]

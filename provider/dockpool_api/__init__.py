"""The provider's HTTP API on port 8088: a thin Bottle adapter over the dockpool core.

Versioned routes under /v1 and the P2PRC-compatible routes share the same
handlers; every answer is JSON (errors included), apart from the few plain-text
answers P2PRC clients expect.
"""

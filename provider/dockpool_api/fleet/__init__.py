"""The fleet: providers that know each other, move instances between them, and keep replicas.

A newcomer reads it top-down:

- ``membership`` — the signed membership table, with last-heard times and expiry; ``wire`` is
  its P2PRC wire form (entries, tables, ``peer_key``, the plain probes) and ``admission`` the
  rule for peers that P2PRC posts;
- ``tls`` and ``transport`` — the fleet's mutual TLS: certificates and the listener, then the
  client side every call to a member goes through;
- ``gossip`` — the rounds and the failure detector; each exchange is ``sync``'s (a summary
  first, then only the differences), comparing ``digest``'s root and bucket hashes, with news
  from ``broadcasts`` riding along and ``suspicion`` holding who is suspected since when;
- ``members`` — a member's entry and seal as the code holds them; ``relays`` — the signed relay
  paths that reach a member behind NAT;
- ``lease`` — a replicated instance runs only while its replica's holder answers; ``counters``
  with ``spend`` — one budget across the fleet: each provider's signed counter sets and their
  merge, then the book that exchanges them on a timer of its own;
- ``moves`` with ``journal`` — an instance moved to another member, and the record that lets
  a restart settle a move cut short;
- ``drains`` — a provider whose owner takes the machine back, its instances moved away;
- ``replicas`` with ``store`` and ``deltas`` — the sender's refreshes, what a holder keeps, and
  what each refresh ships;
- ``restores`` — a replica brought back as an instance once its provider is gone;
- ``routes`` — the HTTP routes of all of the above; ``metrics`` — their Prometheus counters.
"""

"""The composition root: every part of one provider built once, in order, each handed only the
collaborators it uses (narrow Protocols in the parts' modules). No part holds the root or the
routes' Services; what the instance side must ask before a start, or tell when an instance is
removed, is added to it here as callables (instance_side.py)."""
from __future__ import annotations

import os
from functools import partial
from typing import Callable, Optional

from dockpool.addresses import is_ipv6
from dockpool.cputopology import read_topology
from dockpool.policy import Policy, load_policy

from .budgets import Budgets
from .config import ApiConfig, check_narrowing
from .fleet.admission import PeerAdmission
from .fleet.drains import Drain
from .fleet.gossip import Gossip, RateLimit, Traffic, transport_post, verify_member
from .fleet.journal import MoveJournal
from .fleet.members import Member
from .fleet.membership import Membership
from .fleet.metrics import FleetMetrics
from .fleet.moves import Mover
from .fleet.replicas import Replicator
from .fleet.restores import Restorer
from .fleet.spend import FleetSpend
from .fleet.store import ReplicaStore
from .fleet.tls import FleetTLS
from .fleet.transport import HttpTransport, Transport
from .fleet.wire import parse_entry
from .instance_side import Engine, InstanceSide, prices_of
from .services import Services
from .usage_report import UsageReport


def me(config: ApiConfig, policy: Policy) -> Member:
    """This provider as the fleet's table holds it."""
    address = policy.ssh_host
    return parse_entry({
        "Name": config.provider_name,
        "MachineUsername": config.jump_user,
        "IPV4": "" if is_ipv6(address) else address,
        "IPV6": address if is_ipv6(address) else "",
        "ServerPort": str(config.port),
        "BareMetalSSHPort": str(config.jump_port),
    })


def build(config: ApiConfig, peer_verify: Optional[Callable[[Member], bool]] = None) -> Services:
    events = FleetMetrics()
    policy = load_policy(config.policy_file)
    check_narrowing(config, policy.limits)  # a client's limits above the provider's: refuse to start
    engine = Engine(config, policy, read_topology())
    fleet = (FleetTLS.load(config.fleet_cert, config.fleet_key, config.fleet_cas, config.provider_name)
             if config.fleet_port else None)
    fleet_context = fleet.client_context() if fleet else None
    # The one client to other members (none without a fleet certificate: nothing is sent in clear).
    transport: Optional[Transport] = HttpTransport(fleet_context, config.peer_rule) if fleet_context else None
    drain = Drain(config.drain_file)
    drain.state()  # an unreadable drain state stops the start, naming the file
    peers = Membership(config.peers_file, me(config, policy), config.peers_max, config.peer_rule,
                       peer_verify or partial(verify_member, config, transport),
                       expiry=config.peer_expiry, fleet_port=config.fleet_port or 1,
                       draining=drain.draining, relays=config.relays, admission=PeerAdmission(
                           config.peer_rule, frozenset(p for p in (config.jump_port, config.fleet_port) if p),
                           engine.surroundings))
    traffic = Traffic()
    gossip = Gossip(config, peers, traffic, events, transport_post(config, transport) if transport else None)
    usage = UsageReport(config.ledger_file, config.provider_name)
    # One budget across the fleet: every member's signed counters, exchanged on their own timer.
    spend = FleetSpend(config.provider_name, peers, usage, os.path.dirname(os.path.abspath(config.peers_file)),
                       transport, config.gossip_interval, config.gossip_fanout, config.gossip_answers,
                       prices=partial(prices_of, config))
    budgets = Budgets(config.packages, usage, refusals=events.budget_refusals, fleet=spend)
    instances = InstanceSide(config, policy, engine, drain, peers, budgets)
    journal = MoveJournal(config.moves_file)
    mover = Mover(instances, config, peers, transport, events, journal)
    # Two sides of replication, side by side: the sender's refreshes of this provider's own
    # instances, and what this provider holds for the other members.
    replicas = Replicator(mover, instances, config, peers, usage, events, config.replicas_dir)
    store = ReplicaStore(os.path.join(config.replicas_dir, "held"), config.replica_max_bytes,
                         config.replica_client_share)
    restorer = Restorer(config.provider_name, store, instances, peers.member, replicas.lock, budgets.check, mover.land)
    instances.start_guards.extend([mover.start_refusal, lambda record: replicas.fenced(record.name)])
    instances.on_removed.append(replicas.drop)  # its replica at the holder goes too
    return Services(config=config, policy=policy, events=events, instances=instances, fleet=fleet,
                    fleet_context=fleet_context, transport=transport, drain=drain, peers=peers, traffic=traffic,
                    answers=RateLimit(config.gossip_answers, config.gossip_interval), gossip=gossip,
                    journal=journal, mover=mover, replicas=replicas, store=store, restorer=restorer, usage=usage,
                    spend=spend, budgets=budgets)

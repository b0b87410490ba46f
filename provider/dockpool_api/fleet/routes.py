"""Between providers: moves (a client's grant, then the provider-to-provider pull and
export on the fleet's listener), the peer table, and the fleet's exchanges."""
from __future__ import annotations

from typing import Iterator

from bottle import Bottle, HTTPResponse, request, response

from dockpool.errors import InvalidInput, NotFound
from dockpool.validation import validate_name

from ..access import GRANT_KEY, current_client, fleet_peer
from ..responses import json_body
from ..routing import RouteContext
from .gossip import GOSSIP_PATH, PROBE_PATH
from .replicas import instance_header


def add_move_routes(app: Bottle, ctx: RouteContext) -> None:
    mover = ctx.services.mover

    @app.post("/v1/moves", access="client")
    def offer_move() -> HTTPResponse:
        return json_body(mover.offer(current_client(), ctx.body_json()), 201)

    @app.get("/v1/moves/<move_id>", access="client")
    def move_progress(move_id: str) -> HTTPResponse:
        return json_body(mover.progress(current_client(), move_id))

    @app.delete("/v1/moves/<move_id>", access="client")
    def cancel_move(move_id: str) -> HTTPResponse:
        mover.grants.cancel(current_client(), move_id)
        return json_body({"cancelled": move_id})

    @app.post("/v1/fleet/offers", access="fleet")
    def offer_for_member() -> HTTPResponse:
        return json_body(mover.offer_for_member(fleet_peer(), ctx.body_json()), 201)

    @app.get("/v1/fleet/moves/<export_id>", access="fleet")
    def landing_of(export_id: str) -> HTTPResponse:
        return json_body(mover.landing_of(fleet_peer(), export_id))

    @app.post("/v1/moves/<move_id>/pull", access="grant")
    def pull_move(move_id: str) -> HTTPResponse:
        return json_body(mover.pull(request.environ[GRANT_KEY], move_id, ctx.body_json()), 201)

    @app.get("/v1/exports/<export_id>", access="grant")
    def export_snapshot(export_id: str) -> Iterator[bytes]:
        chunks = mover.export(request.environ[GRANT_KEY], export_id)
        response.content_type = "application/x-tar"
        return chunks


def add_replica_routes(app: Bottle, ctx: RouteContext) -> None:
    """The replicas this provider holds for the other members (store.py): each member
    reaches only its own, by the name its certificate proves."""
    services = ctx.services
    store = services.store

    @app.put("/v1/fleet/replicas/<name>", access="fleet")
    def hold_replica(name: str) -> HTTPResponse:
        services.check_taking()  # a draining provider holds nothing new: the source picks another holder
        if request.content_length < 0:
            raise InvalidInput("a refresh says its Content-Length", "body")
        return json_body(store.receive(fleet_peer(), name, request.get_header("X-Dockpool-Refresh", ""),
                                       request.get_header("X-Dockpool-Parent", ""), request.environ["wsgi.input"],
                                       request.content_length,
                                       instance_header(request.get_header("X-Dockpool-Instance", ""))))

    @app.get("/v1/fleet/replicas/<name>", access="fleet")
    def held_replica(name: str) -> HTTPResponse:
        owner = request.get_header("X-Dockpool-Owner", "")  # whose share a refresh would take: the room left of it
        return json_body(store.status(fleet_peer(), name, validate_name(owner, "owner") if owner else ""))

    @app.delete("/v1/fleet/replicas/<name>", access="fleet")
    def drop_replica(name: str) -> HTTPResponse:
        return json_body({"removed": store.remove(fleet_peer(), name)})

    @app.get("/v1/replicas", access="client")
    def replicas_here() -> HTTPResponse:
        client = current_client()
        return json_body({"replicas": store.owned_by(None if client.admin else client.name)})

    @app.post("/v1/replicas/<source>/<name>/restore", access="client")
    def restore_replica(source: str, name: str) -> HTTPResponse:
        response.status = 201
        return json_body(services.restorer.restore(current_client(), source, name))


def add_fleet_routes(app: Bottle, ctx: RouteContext) -> None:
    config, services = ctx.config, ctx.services

    @app.get("/v1/peers", access="reader")
    def peers() -> HTTPResponse:
        return json_body(services.peers.table())

    @app.post("/v1/peers", access="peer")
    def merge_peers() -> HTTPResponse:
        # What clients and P2PRC peers post is P2PRC's tier: shown, never a member (membership.py).
        return json_body(services.peers.merge_p2prc(ctx.body_json()))

    @app.delete("/v1/peers/<ref>", access="admin")
    def remove_peer(ref: str) -> HTTPResponse:
        removed = services.peers.remove(ref)
        if not removed:
            raise NotFound(f"no peer is called {ref!r} or has that address", "ref")
        return json_body({"removed": removed})

    @app.post("/v1/fleet/spend", access="fleet")
    def exchange_spend() -> HTTPResponse:
        # The fleet's spend counters (spend.py): each set checked against its own provider's key.
        return json_body(services.spend.answer(fleet_peer(), ctx.body_json()))

    @app.post("/v1/fleet/gossip", access="fleet")
    def gossip_step() -> HTTPResponse:
        # One step of a member's exchange (sync.py): a summary first, then only what differs.
        return _json_bytes(services.gossip.answer(GOSSIP_PATH, ctx.body_json(), fleet_peer(), services.answers.take))

    @app.post("/v1/fleet/probe", access="fleet")
    def probe_member() -> HTTPResponse:
        # A member that could not reach another asks us to try (gossip.py): {"name"} -> {"ack"}.
        return _json_bytes(services.gossip.answer(PROBE_PATH, ctx.body_json(), fleet_peer(), services.answers.take))

    @app.get("/v1/fleet/identity", access="fleet")
    def identity() -> HTTPResponse:
        return json_body({"provider": config.provider_name, "membership_key": services.peers.public_key})

    @app.get("/v1/fleet", access="reader")
    def fleet() -> HTTPResponse:
        return json_body(ctx.fleet_view())


def _json_bytes(data: bytes) -> HTTPResponse:
    return HTTPResponse(data, headers={"Content-Type": "application/json"})

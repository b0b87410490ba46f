"""Moving a client's instance to another provider of the fleet: both sides of it.

The client (the CLI) asks the target first: ``POST /v1/moves`` (naming the source provider)
checks the instance fits there (limits, policy, a free port) and answers a grant, a secret
good for one move, for that source only, and GRANT_SECONDS; a client holds at most
``moves_per_client`` at once. Then it asks the source: ``POST /v1/instances/<ref>/move``
stops the instance and tells the target (``POST /v1/moves/<id>/pull``, with the grant) which
export to fetch: ``GET /v1/exports/<id>``, with a secret of the source's own, for that target
only: the stopped instance's filesystem (snapshots.py), which no one may start until the move
ends. The target imports it into its engine under the snapshot's name, bounded and checked
(image_archive.py), with its own copy of the instance's image's settings, creates the
instance and answers once its sshd does; only then does the source remove its instance. On
any failure the source starts the instance again if it was running, and the target removes
whatever it imported.

Both ends are members of the fleet, found by name in the live table, and the calls between
them go over the fleet's mutual TLS (tls.py, transport.py): a client can name neither an address
nor a server of its own, and the instance's disk never crosses in clear.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Callable, ContextManager, Iterable, Iterator, Optional, Protocol

from dockpool import snapshots
from dockpool.engine import engine_errors
from dockpool.errors import Conflict, DockpoolError, InvalidInput, NotFound
from dockpool.images import ports_from_image, resolve_image
from dockpool.instances import InstanceManager
from dockpool.labels import DISK_LIMIT, Record
from dockpool.spec import InstanceSpec

from ..auth import hash_token
from ..config import ApiConfig, Client
from .journal import MoveJournal
from .members import Member
from .metrics import FleetMetrics
from .transport import Answer, Call, Transport, Unreachable, route_path

log = logging.getLogger("dockpool.api")
GRANT_SECONDS = 600.0
# What Grants.issue makes (secrets.token_hex(8), secrets.token_urlsafe(32)): a move request carries nothing else.
MOVE_ID = re.compile(r"^[0-9a-f]{16}$")
GRANT_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
SETTLE_RETRY = 2.0  # seconds between asking a target what became of a move whose answer was lost
EXPORT_SECONDS = 3600.0  # a whole filesystem's stream, as long as the source waits for the pull's answer
SNAPSHOT_MARGIN = 64 * 1024**2  # the tar's headers over the files' own sizes

_SNAPSHOT = re.compile(rf"^{re.escape(snapshots.REPOSITORY)}/[a-z0-9][a-z0-9_.-]{{0,62}}:[0-9a-f]{{16}}$")


class MoveFailed(DockpoolError):
    """The other provider refused or failed; the instance is where it was."""

    http_status = 502


class MoveInDoubt(DockpoolError):
    """The target may or may not hold the instance: it stays stopped here until the target says."""

    http_status = 502


class TooManyMoves(DockpoolError):
    http_status = 429


@dataclass
class Grant:
    kind: str  # "move": the target's, for one pull; "export": the source's, for one download
    id: str
    client: Client
    expires: float
    peer: str = ""  # the provider (its certificate's name) that may use it
    spec: Optional[InstanceSpec] = None
    admit: Optional[Callable[..., InstanceSpec]] = None
    limit: int = 0
    container_id: str = ""  # an export's: the stopped instance whose filesystem it streams
    streamed: bool = False  # an export's: the whole filesystem went out (the target may hold it all)
    export: str = ""  # a move's: the source's export it pulls
    start: bool = True  # a move's: start the instance where it lands (a drain keeps a stopped one stopped)
    stream: Optional[snapshots.Bounded] = None  # the snapshot arriving: its count is the move's progress
    state: str = "granted"  # then "moving", "done" or "failed"
    error: str = ""
    used: bool = False


class Grants:
    """Secrets for one move each, kept hashed and in memory only (a restart cancels them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_hash: dict[str, Grant] = {}

    def issue(self, kind: str, client: Client, most: int = 0, **data: Any) -> tuple[Grant, str]:
        """A new grant; with ``most``, refused while the client holds that many of this kind unfinished."""
        token = secrets.token_urlsafe(32)
        grant = Grant(kind, secrets.token_hex(8), client, time.monotonic() + GRANT_SECONDS, **data)
        with self._lock:
            self._forget_expired()
            held = sum(1 for g in self._by_hash.values() if g.kind == kind and g.client.name == client.name
                       and g.state in ("granted", "moving"))
            if most and held >= most:
                raise TooManyMoves(f"moves: {client.name} holds {held} unfinished moves here, the most this provider "
                                   "allows at once; finish them or wait until they expire",
                                   "moves_per_client", {"max": most, "retry_after": 60})
            self._by_hash[hash_token(token)] = grant
        return grant, token

    def find(self, token: str) -> Optional[Grant]:
        with self._lock:
            self._forget_expired()
            return self._by_hash.get(hash_token(token)) if token else None

    def get(self, client: Client, move_id: str) -> Grant:
        with self._lock:
            for grant in self._by_hash.values():
                if grant.id == move_id and grant.client.name == client.name:
                    return grant
        raise NotFound(f"move {move_id!r} does not exist (or has expired)", "id")

    def cancel(self, client: Client, move_id: str) -> None:
        """The client gives back a grant it will not use (a move under way cannot be)."""
        grant = self.get(client, move_id)
        with self._lock:
            if grant.state == "moving":
                raise Conflict(f"move {move_id!r} is under way; it ends by itself", "id")
            for key in [k for k, g in self._by_hash.items() if g is grant]:
                del self._by_hash[key]

    def take(self, grant: Grant, kind: str, grant_id: str) -> None:
        """Use a grant once, for the route and id it was made for."""
        with self._lock:
            if grant.kind != kind or grant.id != grant_id or grant.used:
                raise Conflict(f"this grant is not for {kind} {grant_id!r}, or was used already", "Authorization")
            grant.used = True

    def pulling(self, peer: str, export_id: str) -> bool:
        """Whether a move from ``peer`` is fetching its export ``export_id`` here now."""
        with self._lock:
            return any(g.kind == "move" and g.state == "moving" and g.peer == peer and g.export == export_id
                       for g in self._by_hash.values())

    def moving(self, container_id: str) -> bool:
        """Whether an export of this instance is under way."""
        with self._lock:
            return any(g.kind == "export" and g.state == "moving" and g.container_id == container_id
                       for g in self._by_hash.values())

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, g in self._by_hash.items() if g.expires < now and g.state != "moving"]:
            del self._by_hash[key]


class ProviderSide(Protocol):
    """What a move needs of this provider's instance side (instance_side.InstanceSide is it): its
    engine, and the rules a client's instance is held to here."""

    def manager(self) -> InstanceManager: ...

    def admission(self, client: Client, body: Any) -> tuple[InstanceSpec, Callable[[InstanceSpec, list[Record]], InstanceSpec]]:
        ...

    def find(self, client: Client, ref: str) -> Record: ...

    def remove_record(self, record: Record) -> None: ...

    def record_forward(self, record_name: str, owner: str, member: Member, new_name: str) -> None: ...

    def client_view(self, view: dict[str, Any], usage: Optional[dict]) -> dict[str, Any]: ...

    def check_taking(self) -> None: ...

    def check_budget(self, owner: str, doing: str) -> None: ...


class Members(Protocol):
    """The live members of the fleet (membership.Membership is it)."""

    def member(self, name: Any) -> Optional[Member]: ...

    def takers(self) -> list[Member]: ...


class Mover:
    def __init__(self, side: ProviderSide, config: ApiConfig, members: Members, transport: Optional[Transport],
                 events: FleetMetrics, journal: MoveJournal) -> None:
        self.side, self.config, self.members, self.transport, self.events = side, config, members, transport, events
        self.grants = Grants()
        self.journal = journal
        self._active: set[str] = set()  # exports this process is moving (their journal entries are not in doubt)

    def _member(self, name: Any, field_name: str) -> Member:
        """A live member of the fleet, by its certificate's name: never an address a client chose."""
        entry = self.members.member(name)
        if entry is None or self.transport is None:
            raise InvalidInput(f"{field_name}: {name!r} is not a live provider of this one's fleet "
                               "(GET /v1/fleet lists them by name)", field_name)
        return entry

    def call_member(self, member: Member, method: str, path: str, secret: str, body: Optional[dict] = None,
                    timeout: float = 30.0, data: Optional[IO[bytes]] = None,
                    headers: Optional[dict[str, str]] = None, most: int = 64 * 1024) -> Answer:
        """A request to a member over the fleet's transport, with a JSON ``body`` or a file's ``data``
        (its headers say its type and length), within ``timeout`` seconds in all and ``most`` bytes
        of answer; the answer, open for the caller to read. Raises Unreachable (an OSError)."""
        if self.transport is None:
            raise Unreachable(f"{member.name}: this provider has no fleet certificate")
        sent = json.dumps(body).encode() if body is not None else data
        headers = {**(headers or {}), **({"Authorization": f"Bearer {secret}"} if secret else {})}  # fleet routes: none
        return self.transport.open(member, Call(method, path, sent, headers, deadline=timeout, most=most))

    def ask_member(self, member: Member, method: str, path: str, secret: str, body: Optional[dict] = None,
                   timeout: float = 30.0, data: Optional[IO[bytes]] = None, headers: Optional[dict[str, str]] = None,
                   most: int = 64 * 1024) -> tuple[int, bytes]:
        """call_member for a short answer: its status and its body (at most ``most`` bytes), the answer closed."""
        answer = self.call_member(member, method, path, secret, body, timeout=timeout, data=data, headers=headers,
                                  most=most)
        try:
            return answer.status, answer.read()
        finally:
            answer.close()

    # ---- the target ------------------------------------------------------------------------

    def offer(self, client: Client, body: Any, start: bool = True) -> dict[str, Any]:
        """Will the instance fit here? A grant for the move from ``source`` if so; nothing reserved yet."""
        if not isinstance(body, dict):
            raise InvalidInput("the body is the instance's request and the source provider's name", "body")
        self.side.check_taking()
        if start:  # a budget spent anywhere in the fleet: no running here instead (a drain's stopped one may come)
            self.side.check_budget(client.name, "moving an instance in")
        request = dict(body)
        source = self._member(request.pop("source", None), "source").name
        spec, admit = self.side.admission(client, request)
        manager = self.side.manager()
        image = resolve_image(manager.client, spec.image, manager.policy.image_prefix)
        manager.plan(spec, ports_from_image(image.attrs), manager.records())  # 409 when no port or core is free
        limit = (spec.disk_limit or 0) + int(image.attrs.get("Size") or 0) + SNAPSHOT_MARGIN
        grant, token = self.grants.issue("move", client, most=self.config.moves_per_client, peer=source,
                                         spec=spec, admit=admit, limit=limit, start=start)
        return {"id": grant.id, "grant": token, "expires_in": GRANT_SECONDS, "max_bytes": limit,
                "provider": self.config.provider_name}

    def offer_for_member(self, member: str, body: Any) -> dict[str, Any]:
        """A member draining asks on its client's behalf (``{client, request, start}``): the same
        admission and grant as the client's own offer, for a client who has an account here too."""
        if (not isinstance(body, dict) or set(body) != {"client", "request", "start"} or not isinstance(body["request"], dict)
                or not isinstance(body["start"], bool)):
            raise InvalidInput("the body is {client, request, start}: the instance's owner, its create request, and "
                               "whether it runs", "body")
        client = next((c for c in self.config.clients if c.name == body["client"]), None)
        if client is None:
            raise NotFound(f"client {body['client']!r} has no account on {self.config.provider_name}", "client")
        return self.offer(client, {**body["request"], "source": member}, start=body["start"])

    def progress(self, client: Client, move_id: str) -> dict[str, Any]:
        grant = self.grants.get(client, move_id)
        received = grant.stream.count if grant.stream is not None else 0
        return {"id": grant.id, "state": grant.state, "received": received, "max_bytes": grant.limit,
                **({"error": grant.error} if grant.error else {})}

    def pull(self, grant: Grant, move_id: str, body: Any) -> dict[str, Any]:
        """Fetch the snapshot from the source (the calling member) as a stream, check it is the one
        image it names, load it, create the instance."""
        self.grants.take(grant, "move", move_id)
        if (not isinstance(body, dict) or set(body) != {"export", "snapshot", "secret"}
                or not all(isinstance(v, str) for v in body.values())
                or not _SNAPSHOT.match(body["snapshot"]) or not body["snapshot"].endswith(f":{body['export']}")):
            raise InvalidInput("the body is {export, snapshot, secret}: the source's export, the snapshot image "
                               "(dockpool-move/NAME:EXPORT) and the secret to fetch it", "snapshot")
        spec, admit = grant.spec, grant.admit
        if spec is None or admit is None:  # a move's grant holds both from its offer (take() checked the kind)
            raise InvalidInput(f"move {move_id} names no instance to create", "move")
        source = self._member(grant.peer, "source")
        grant.state, grant.export = "moving", body["export"]

        @contextmanager
        def fetched() -> Iterator[Iterable[bytes]]:
            answer = self.call_member(source, "GET", route_path("v1", "exports", body["export"]), body["secret"],
                                      timeout=EXPORT_SECONDS, most=grant.limit)
            try:
                if answer.status != 200:
                    raise MoveFailed(f"the source answered {answer.status} for the snapshot", "source")
                grant.stream = snapshots.Bounded(iter(lambda: answer.read(snapshots.CHUNK), b""), grant.limit)
                yield grant.stream
            finally:
                answer.close()

        try:
            view = self.land(grant.export, grant.peer, body["snapshot"], fetched, spec, admit, grant.start)
        except BaseException as exc:
            grant.state, grant.error = "failed", getattr(exc, "message", str(exc))
            if isinstance(exc, OSError):
                raise MoveFailed(f"fetching the snapshot: {exc}", "source") from None
            raise
        grant.state = "done"
        return self.side.client_view(view, None)

    def land(self, export_id: str, source: str, snapshot: str, chunks: Callable[[], ContextManager[Iterable[bytes]]],
             spec: InstanceSpec, admit: Callable[[InstanceSpec, list[Record]], InstanceSpec],
             start: bool) -> dict[str, Any]:
        """Load the filesystem ``chunks`` opens as the image ``snapshot`` and create ``spec`` from it
        (a move's target, or a restore on a replica's holder), journaled so that a restart removes
        what a killed landing made and keeps what landed whole. The new instance's view."""
        if start:  # spent since the offer (or a restore): it does not run here
            self.side.check_budget(spec.owner, f"moving {spec.owner}'s instance in to run")
        manager = self.side.manager()
        self.journal.landing(export_id, source)  # before anything exists: a restart removes what it made
        try:
            # The image settings come from this provider's own copy of the instance's image, never the source.
            config = resolve_image(manager.client, spec.image, manager.policy.image_prefix).attrs["Config"]
            with chunks() as stream:
                snapshots.load(manager.client, stream, snapshot, export_id, config)
            view = manager.create(spec, start=start, origin="api", admit=admit, image_ref=snapshot)
            self.journal.landed(export_id, view["id"], view["name"])  # from now on the source may be told
        except BaseException:
            snapshots.remove_snapshot(manager.client, snapshot)  # if the load finished before the failure
            self.journal.unland(export_id)
            raise
        return view

    def landing_of(self, member: str, export_id: str) -> dict[str, Any]:
        """The source ``member`` asks what became of its export (it lost the answer, or was killed):
        the instance it made here, or that it is still arriving; 404 when nothing here holds it."""
        landed = self.journal.landed_from(export_id, member)
        if landed is not None:
            return {"state": "done", "name": landed["name"]}
        if self.grants.pulling(member, export_id):
            return {"state": "moving"}
        raise NotFound(f"no move of export {export_id!r} from {member} ended here", "id")

    # ---- the source ------------------------------------------------------------------------

    def move_out(self, client: Client, ref: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) != {"target", "move", "grant"}:
            raise InvalidInput("the body is {target, move, grant}: the target provider's name, and the move and "
                               "grant it gave", "body")
        target = self._member(body["target"], "target")  # first: a target no member is refused before a lookup
        move_id = _matching(body, "move", MOVE_ID, "the move's id the target gave (16 hexadecimal digits)")
        token = _matching(body, "grant", GRANT_TOKEN, "the grant the target gave (43 characters of base64url)")
        return self.transfer(client, self.side.find(client, ref), target, move_id, token)

    def transfer(self, client: Client, record: Record, target: Member, move_id: str, token: str) -> dict[str, Any]:
        """Move ``record`` to the member ``target`` with the move and grant it gave; the instance is
        removed here once it answers there, and runs here again (if it ran) when the move failed.
        When the answer is lost and the target cannot say whether it took the instance, the move is
        in doubt: the instance stays stopped here until the target answers (settle)."""
        manager = self.side.manager()
        with engine_errors(f"measuring {record.name!r}"):
            listed = manager.client.api.containers(all=True, size=True, filters={"id": record.id})
        written = int((listed[0].get("SizeRw") if listed else 0) or 0)
        limit = int(record.labels.get(DISK_LIMIT) or 0)
        if limit and written > limit:
            raise Conflict(f"disk_limit: {record.name} holds {written} bytes, over its disk limit of {limit}; "
                           "remove files before moving it", "disk_limit", {"size_rw": written, "disk_limit": limit})
        with self.events.move() as outcome:
            return self._transfer(client, record, target, move_id, token, outcome)

    def _transfer(self, client: Client, record: Record, target: Member, move_id: str, token: str,
                  outcome: dict[str, str]) -> dict[str, Any]:
        manager = self.side.manager()
        was_running = record.status == "running"
        grant, secret = self.grants.issue("export", client, peer=target.name)
        grant.container_id, grant.state = record.id, "moving"  # from now on nobody starts it (Services.start)
        self._active.add(grant.id)
        self.journal.begin(grant.id, record.id, record.name, client.name, target.name, was_running)
        try:
            try:
                if was_running:
                    manager.stop(record.id)
                moved = self._pull(target, move_id, token, grant, record.name, secret)
            except BaseException as exc:
                grant.state = "failed"
                if isinstance(exc, MoveInDoubt):
                    outcome["result"] = "in_doubt"
                    raise
                self._restore(self.journal.outgoing()[grant.id])
                self.journal.end(grant.id)
                raise
            grant.state = "done"
            self.side.remove_record(record)  # and its own snapshot image, if it had been moved in before
            self.side.record_forward(record.name, client.name, target, moved["name"])
            self.journal.end(grant.id)
        finally:
            self._active.discard(grant.id)
        return {"moved": record.name, "instance": moved}

    def _pull(self, target: Member, move_id: str, token: str, grant: Grant, name: str,
              secret: str) -> dict[str, Any]:
        """Tell the target to fetch the export; the instance it made. Its answer lost: what it says it made."""
        try:
            status, text = self.ask_member(target, "POST", route_path("v1", "moves", move_id, "pull"), token,
                                           {"export": grant.id, "snapshot": snapshots.snapshot_ref(name, grant.id),
                                            "secret": secret}, timeout=3600, most=1024**2)
        except OSError as exc:
            try:
                made = self._asked_landing(target.name, grant.id, tries=3)
            except MoveInDoubt:
                if grant.streamed:  # the target may hold it all: never run a second copy
                    raise MoveInDoubt(f"the target's answer was lost ({exc}) after the whole filesystem went out, and "
                                      f"{target.name} cannot say whether it took {name}: it stays stopped here "
                                      "until it can", "target", {"in_doubt": True}) from None
                made = None  # cut before the end: the target cannot have imported it
            if made is None:
                raise MoveFailed(f"the target did not finish the move: {exc}", "target") from None
            return made
        if status not in (200, 201):
            raise MoveFailed(f"the target answered {status}: {error_of(text)}", "target", {"status": status})
        return json.loads(text)

    def _asked_landing(self, target: str, export_id: str, tries: int = 1) -> Optional[dict[str, Any]]:
        """What the member ``target`` made of the export: ``{"name"}``, None when it made nothing;
        MoveInDoubt when it cannot be asked or it is still arriving."""
        for attempt in range(tries):
            if attempt:
                time.sleep(SETTLE_RETRY)
            member = self.members.member(target)
            if member is None or self.transport is None:
                continue
            try:
                status, text = self.ask_member(member, "GET", route_path("v1", "fleet", "moves", export_id), "", timeout=10)
            except OSError:
                continue
            if status == 404:
                return None
            if status == 200 and json.loads(text).get("state") == "done":
                return {"name": json.loads(text)["name"], "member": member}
        raise MoveInDoubt(f"{target} cannot say what became of export {export_id}", "target", {"in_doubt": True})

    def forget_unfinished_landings(self) -> int:
        """At start: remove what moves a killed service was taking in made here (an instance never
        announced to its source, which still holds it); the snapshots go with the start's sweep."""
        client = self.side.manager().client
        removed = 0
        for export_id in self.journal.unfinished_landings():
            with engine_errors("finding what an unfinished move made"):
                images = {i["Id"] for i in client.api.images(filters={"label": f"{snapshots.MOVE_LABEL}={export_id}"})}
                made = [c["Id"] for c in client.api.containers(all=True) if c["ImageID"] in images]
            removed += sum(1 for container_id in made if self.side.manager().remove(container_id))
        return removed

    def settling(self, interval: float) -> None:
        """Settle the moves in doubt now and every ``interval`` seconds, in a thread of its own."""
        def run() -> None:
            while True:
                try:
                    settled = self.settle()
                    if settled:
                        log.warning("settled moves left in doubt: %s", ", ".join(settled))
                except DockpoolError as exc:
                    log.error("settling the moves in doubt: %s", exc.message)
                time.sleep(interval)
        threading.Thread(target=run, name="settle-moves", daemon=True).start()

    def settle(self) -> list[str]:
        """Moves from here left in doubt (the service was killed, or the answer lost): end each one
        the target can now answer for. Returns the names settled."""
        settled = []
        for export_id, entry in self.journal.outgoing().items():
            if export_id in self._active:
                continue
            try:
                made = self._asked_landing(entry["target"], export_id)
            except MoveInDoubt:
                continue
            if made is not None:  # it runs there: the copy here goes, and its owner is told where
                record = next((r for r in self.side.manager().records() if r.id == entry["id"]), None)
                if record is not None:
                    self.side.remove_record(record)
                self.side.record_forward(entry["name"], entry["owner"], made["member"], made["name"])
            else:
                self._restore(entry)
            self.journal.end(export_id)
            settled.append(entry["name"])
        return settled

    def _restore(self, entry: dict[str, Any]) -> None:
        """The instance of a failed move, as it was: started again if it ran."""
        if entry["running"]:
            try:
                self.side.manager().start(entry["id"])
            except NotFound:
                pass  # its owner removed it meanwhile

    def export(self, grant: Grant, export_id: str) -> Iterator[bytes]:
        self.grants.take(grant, "export", export_id)  # now: a refused grant is an error answer, not a cut stream
        return self._streamed(grant)

    def _streamed(self, grant: Grant) -> Iterator[bytes]:
        yield from snapshots.exported(self.side.manager().client, grant.container_id)
        grant.streamed = True

    def held(self, container_id: str) -> bool:
        """Whether a move is streaming this instance's filesystem, or is in doubt (it must stay
        stopped until the move ends)."""
        return self.grants.moving(container_id) or self.journal.held(container_id) is not None

    def start_refusal(self, record: Record) -> Optional[str]:
        """Why ``record`` may not start now because of a move (the instance side's start guard), or None."""
        if self.held(record.id):
            return (f"{record.name} is being moved; it starts where it lands, or here again if the move fails "
                    "(a move whose end this provider could not learn waits for the target's word)")
        return None


def _matching(body: dict[str, Any], field_name: str, pattern: re.Pattern[str], what: str) -> str:
    """A value the client copies from the target's answer, checked before anything is stopped."""
    value = body[field_name]
    if not isinstance(value, str) or not pattern.fullmatch(value):  # fullmatch: "$" lets a final "\n" through
        raise InvalidInput(f"{field_name}: must be {what}, as POST /v1/moves on the target answered it", field_name)
    return value


def error_of(text: bytes) -> str:
    try:
        return str(json.loads(text).get("error"))[:500]
    except (ValueError, AttributeError):
        return text[:200].decode(errors="replace")

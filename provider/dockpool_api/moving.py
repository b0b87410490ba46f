"""Moving a client's instance to another provider of the fleet: both sides of it.

The client (the CLI) asks the target first: ``POST /v1/moves`` checks the instance fits
there (limits, policy, a free port) and answers a grant, a secret good for one move and
GRANT_SECONDS. Then it asks the source: ``POST /v1/instances/<ref>/move`` stops the
instance, commits it, and tells the target (``POST /v1/moves/<id>/pull``, with the grant)
where to fetch it: ``GET /v1/exports/<id>``, with a secret of the source's own. The target
streams the snapshot into its engine (bounded), creates the instance and answers once
its sshd does; only then does the source remove its instance. On any failure the source
removes the snapshot and starts the instance again if it was running, and the target
removes whatever it loaded. Both ends talk only to providers in their live peer table.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional
from urllib.parse import urlsplit

import requests

from dockpool import labels as L
from dockpool import moves
from dockpool.engine import engine_errors
from dockpool.errors import Conflict, DockpoolError, InvalidInput, NotFound
from dockpool.images import ports_from_image, resolve_image
from dockpool.peers import peer_key
from dockpool.spec import InstanceSpec

from .auth import hash_token
from .config import Client

GRANT_SECONDS = 600.0
SNAPSHOT_MARGIN = 64 * 1024**2  # archive headers and the image's own metadata


class MoveFailed(DockpoolError):
    """The other provider refused or failed; the instance is where it was."""

    http_status = 502


@dataclass
class Grant:
    kind: str  # "move": the target's, for one pull; "export": the source's, for one download
    id: str
    client: Client
    expires: float
    spec: Optional[InstanceSpec] = None
    admit: Optional[Callable[..., InstanceSpec]] = None
    limit: int = 0
    image_id: str = ""
    stream: Optional[moves.Bounded] = None  # the snapshot arriving: its count is the move's progress
    state: str = "granted"  # then "moving", "done" or "failed"
    error: str = ""
    used: bool = False


class Grants:
    """Secrets for one move each, kept hashed and in memory only (a restart cancels them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_hash: dict[str, Grant] = {}

    def issue(self, kind: str, client: Client, **data: Any) -> tuple[Grant, str]:
        token = secrets.token_urlsafe(32)
        grant = Grant(kind, secrets.token_hex(8), client, time.monotonic() + GRANT_SECONDS, **data)
        with self._lock:
            self._forget_expired()
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

    def take(self, grant: Grant, kind: str, grant_id: str) -> None:
        """Use a grant once, for the route and id it was made for."""
        with self._lock:
            if grant.kind != kind or grant.id != grant_id or grant.used:
                raise Conflict(f"this grant is not for {kind} {grant_id!r}, or was used already", "Authorization")
            grant.used = True

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for key in [k for k, g in self._by_hash.items() if g.expires < now and g.state != "moving"]:
            del self._by_hash[key]


def _endpoint(url: Any, field_name: str) -> tuple[str, str]:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise InvalidInput(f"{field_name}: give the provider's API as http://ADDRESS:PORT", field_name)
    return parts.hostname, str(parts.port)


class Mover:
    def __init__(self, services: Any) -> None:
        self.services = services
        self.grants = Grants()

    @property
    def _url(self) -> str:
        address, port = self.services.config.advertise_address, self.services.config.port
        return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"

    def _check_member(self, url: Any, field_name: str) -> str:
        """Only providers this one knows as live members of its fleet: a client cannot make it
        call an address of its choosing (its own network, a metadata service)."""
        endpoint = _endpoint(url, field_name)
        members = {peer_key(e) for e in self.services.peers.table()["ip_address"][1:]}
        if endpoint not in members:
            raise InvalidInput(f"{field_name}: {url} is not a provider of this one's fleet (see GET /v1/fleet)", field_name)
        return url.rstrip("/")

    # ---- the target ------------------------------------------------------------------------

    def offer(self, client: Client, body: Any) -> dict[str, Any]:
        """Will the instance fit here? A grant for the move if so; nothing reserved yet."""
        spec, admit = self.services.admission(client, body)
        manager = self.services.manager()
        image = resolve_image(manager.client, spec.image, manager.policy.image_prefix)
        manager.plan(spec, ports_from_image(image.attrs), manager.records())  # 409 when no port or core is free
        limit = (spec.disk_limit or 0) + int(image.attrs.get("Size") or 0) + SNAPSHOT_MARGIN
        grant, token = self.grants.issue("move", client, spec=spec, admit=admit, limit=limit)
        return {"id": grant.id, "grant": token, "expires_in": GRANT_SECONDS, "max_bytes": limit}

    def progress(self, client: Client, move_id: str) -> dict[str, Any]:
        grant = self.grants.get(client, move_id)
        received = grant.stream.count if grant.stream is not None else 0
        return {"id": grant.id, "state": grant.state, "received": received, "max_bytes": grant.limit,
                **({"error": grant.error} if grant.error else {})}

    def pull(self, grant: Grant, move_id: str, body: Any) -> dict[str, Any]:
        """Fetch the snapshot from the source as a stream, load it, create the instance."""
        self.grants.take(grant, "move", move_id)
        if not isinstance(body, dict) or not isinstance(body.get("secret"), str):
            raise InvalidInput("the body is {source, secret}: where the snapshot is and the secret to fetch it", "secret")
        source = self._check_member(body.get("source"), "source")
        manager = self.services.manager()
        grant.state, image_id = "moving", ""
        try:
            with requests.get(source, headers={"Authorization": f"Bearer {body['secret']}"}, stream=True,
                              timeout=(10, 120), allow_redirects=False) as answer:
                if answer.status_code != 200:
                    raise MoveFailed(f"the source answered {answer.status_code} for the snapshot", "source")
                grant.stream = moves.Bounded(answer.iter_content(moves.CHUNK), grant.limit)
                image_id = moves.load(manager.client, grant.stream, self._snapshot_id(source))
            view = manager.create(grant.spec, origin="api", admit=grant.admit, image_ref=image_id)
        except BaseException as exc:
            # A cut stream registers no image (the engine does at the archive's end): only ours to remove.
            grant.state, grant.error = "failed", getattr(exc, "message", str(exc))
            if image_id:
                moves.remove_snapshot(manager.client, image_id)
            if isinstance(exc, requests.RequestException):
                raise MoveFailed(f"fetching the snapshot: {exc}", "source") from None
            raise
        grant.state = "done"
        return self.services._decorate(view, None)

    @staticmethod
    def _snapshot_id(source: str) -> str:
        return source.rsplit("/", 1)[-1]

    # ---- the source ------------------------------------------------------------------------

    def move_out(self, client: Client, ref: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) != {"target", "move", "grant"}:
            raise InvalidInput("the body is {target, move, grant}: the target's API, and the move and grant it gave", "body")
        target = self._check_member(body["target"], "target")
        record = self.services.find(client, ref)
        manager = self.services.manager()
        with engine_errors(f"measuring {ref!r}"):
            listed = manager.client.api.containers(all=True, size=True, filters={"id": record.id})
        written = int((listed[0].get("SizeRw") if listed else 0) or 0)
        limit = int(record.labels.get(L.DISK_LIMIT) or 0)
        if limit and written > limit:
            raise Conflict(f"disk_limit: {record.name} holds {written} bytes, over its disk limit of {limit}; "
                           "remove files before moving it", "disk_limit", {"size_rw": written, "disk_limit": limit})
        was_running = record.status == "running"
        grant, secret = self.grants.issue("export", client)
        image_id = ""
        try:
            if was_running:
                manager.stop(record.id)
            image_id = moves.snapshot(manager.client, record.id, record.name, grant.id)
            grant.image_id, grant.state = image_id, "moving"
            try:
                answer = requests.post(f"{target}/v1/moves/{body['move']}/pull", timeout=(10, 3600),
                                       json={"source": f"{self._url}/v1/exports/{grant.id}", "secret": secret},
                                       headers={"Authorization": f"Bearer {body['grant']}"}, allow_redirects=False)
            except requests.RequestException as exc:
                raise MoveFailed(f"the target did not finish the move: {exc}", "target") from None
            if answer.status_code not in (200, 201):
                raise MoveFailed(f"the target answered {answer.status_code}: {_error_of(answer)}", "target",
                                 {"status": answer.status_code})
            moved = answer.json()
        except BaseException:
            grant.state = "failed"
            if image_id:
                moves.remove_snapshot(manager.client, image_id)
            if was_running:
                manager.start(record.id)
            raise
        grant.state = "done"
        self.services.remove_record(record)  # and its own snapshot image, if it had been moved in before
        moves.remove_snapshot(manager.client, image_id)
        return {"moved": record.name, "instance": moved}

    def export(self, grant: Grant, export_id: str) -> Iterator[bytes]:
        self.grants.take(grant, "export", export_id)
        return moves.saved(self.services.manager().client, grant.image_id)


def _error_of(answer: requests.Response) -> str:
    try:
        return str(answer.json().get("error"))[:500]
    except ValueError:
        return answer.text[:200]

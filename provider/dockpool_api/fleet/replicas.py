"""Replicas: a copy of an instance's filesystem kept on another member of the fleet, so that it
outlives a sudden stop of this provider.

A refresh reads the instance's mounted filesystem while it runs and then freezes it (the cgroup
freezer, ``docker pause``) only to settle what changed meanwhile (deltas.py), so that the
copy is of one moment, as a power cut would leave it; where the files cannot be read so, it is
frozen while ``docker export`` streams them (deltas.py). What changed since the last
refresh is spooled to this provider's disk, the instance thaws, and the delta goes to the
holder over the fleet's mutual TLS (``PUT /v1/fleet/replicas/NAME``), which
keeps it bounded (store.py). The first refresh to a holder is a full copy; so is the
next one after the holder lost or refused the chain, or when the holder changes (the old one
is gone from the fleet, draining, or out of room).

What this provider keeps of each of its own replicas, in ``<replicas_dir>/out``: the holder,
the last refresh and when it was taken, and the manifest the next delta is computed against.

A replica may be restored on its holder once this provider has expired from the fleet
(restores.py). So a provider runs a replicated instance only while its holder answers (lease.py),
and a provider that was away that long fences its replicated instances when it
starts again, before it serves (they stay stopped, and cannot be started), and asks each
holder: one restored elsewhere is removed here and its owner forwarded to it, the others run
again (reconcile).
"""
from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import sqlite3
import tempfile
import threading
import time
from datetime import datetime, timezone
from typing import IO, Any, Optional

from dockpool import snapshots
from dockpool.atomicfile import read_json, write_json
from dockpool.client_requests import move_request
from dockpool.engine import engine_errors
from dockpool.errors import Conflict, DockpoolError, InvalidInput
from dockpool.labels import OWNER, PUBLIC_KEY, REPLICA, Record
from dockpool.validation import validate_name

from ..config import ApiConfig
from ..usage_report import UsageReport
from ..windows import SlidingWindows
from . import transport
from .deltas import LiveDelta, Manifest, write_delta
from .lease import Lease
from .members import Member
from .metrics import FleetMetrics
from .moves import Members, Mover, ProviderSide, error_of
from .store import NoRoom, no_room

log = logging.getLogger("dockpool.api")


class RefreshRefused(DockpoolError):
    http_status = 502


class TooManyRefreshes(DockpoolError):
    http_status = 429


def instance_header(value: str) -> dict[str, Any]:
    """The ``X-Dockpool-Instance`` header of a refresh: what a restore needs besides the files
    (the owner, the create request a move would send, whether it ran), as base64url JSON."""
    try:
        instance = json.loads(base64.urlsafe_b64decode(value.encode()))
    except ValueError:
        instance = None
    if (not isinstance(instance, dict) or set(instance) != {"owner", "request", "running"}
            or not isinstance(instance["request"], dict) or not isinstance(instance["running"], bool)):
        raise InvalidInput("X-Dockpool-Instance: base64url JSON of {owner, request, running}", "instance")
    validate_name(instance["owner"], "owner")
    return instance


def mounted_layer(attrs: dict[str, Any]) -> Optional[tuple[str, str]]:
    """The running instance's merged view and the overlay's upper directory, when this process can
    read them on this host (overlay2, runc, a mount of this machine; the service has
    CAP_DAC_READ_SEARCH for it): else None, and a refresh reads ``docker export`` while frozen."""
    driver = attrs.get("GraphDriver") or {}
    data = driver.get("Data") or {}
    merged, upper = data.get("MergedDir"), data.get("UpperDir")
    if (driver.get("Name") != "overlay2" or not merged or not upper
            or (attrs.get("HostConfig") or {}).get("Runtime") not in (None, "", "runc")):
        return None  # gVisor keeps what its sandbox writes out of the host's view
    if not os.path.ismount(merged):
        return None  # another machine's engine: the path is not mounted here
    try:  # listed, not os.access: access(2) ignores the capability of a service that is not root
        os.listdir(merged)
        os.listdir(upper)
    except OSError:
        return None  # no right to read them
    return merged, upper


class Replicator:
    def __init__(self, mover: Mover, side: ProviderSide, config: ApiConfig, members: Members, usage: UsageReport,
                 events: FleetMetrics, directory: str) -> None:
        """The sender's side: this provider's own instances' replicas at their holders (what a holder
        keeps for others is store.ReplicaStore, built beside this by the composition root)."""
        self.mover, self.side, self.config, self.members, self.usage, self.events = (
            mover, side, config, members, usage, events)
        # What a client may ask for (the periodic refreshes are the operator's interval): per instance, per client.
        self.asked = {"replica_refreshes_per_hour": SlidingWindows(config.replica_refreshes_per_hour, 3600.0),
                      "replica_client_refreshes_per_hour": SlidingWindows(config.replica_client_refreshes_per_hour, 3600.0)}
        self._asked_lock = threading.Lock()
        self.out = os.path.join(directory, "out")
        self.alive = os.path.join(directory, "alive")  # touched every pass: how long this provider was away
        self.left = os.path.join(directory, "left.json")  # replicas to delete at holders not reached yet
        self._left_lock = threading.Lock()
        self.started = time.monotonic()
        self.lease = Lease(config.peer_expiry)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def lock(self, name: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(name, threading.Lock())

    def _path(self, name: str, kind: str = "") -> str:
        """Where this provider keeps its replica of ``name``: the state (kind "") or the manifest."""
        return os.path.join(self.out, f"{name}{kind}.json")

    def _save(self, name: str, state: dict[str, Any]) -> None:
        write_json(self._path(name), state, mode=0o600)

    def state(self, name: str) -> Optional[dict[str, Any]]:
        try:
            return read_json(self._path(name))
        except FileNotFoundError:
            return None

    def shown(self, record: Record) -> list[dict[str, Any]]:
        """The instance's replica as its owner sees it: where, how old, what the last refresh cost."""
        state = self.state(record.name)
        if state is None:
            return []
        member = self.members.member(state["holder"])
        return [{"holder": state["holder"], "live": member is not None, "refresh": state["refresh"],
                 "fenced": self.fenced_message(record.name, state) if state.get("fenced") else None,
                 "refreshed": state["refreshed"], "age_seconds": round(time.time() - state["taken"], 1),
                 "shipped_bytes": state["shipped_bytes"], "full": state["full"],
                 "pause_seconds": state["pause_seconds"], "read": state.get("read", "export")}]

    def refresh(self, record: Record, asked: bool = False) -> dict[str, Any]:
        """Refresh the replica of ``record``: to its holder while it is a live member that takes
        instances, else to another one, with a full copy. ``asked``: by a client, within her
        package's budgets and the refreshes she may ask for (admit); each refresh she asked for,
        now or at creation (``replica: true``), is charged to her (charge)."""
        if self.mover.held(record.id):
            raise Conflict(f"{record.name} is being moved; its replica is refreshed where it lands", "id")
        with self.lock(record.name):
            state = self.state(record.name)
            if state and state.get("fenced"):
                raise Conflict(self.fenced_message(record.name, state), "id")
            if asked:
                self.admit(record)
            cpu_before = time.thread_time_ns()
            shown = self._refresh_somewhere(record, state)
            if asked or record.labels.get(REPLICA) == "true":
                self.charge(record, time.thread_time_ns() - cpu_before, shown["shipped_bytes"])
            return shown

    def admit(self, record: Record) -> None:
        """Refuse a refresh the owner asks for while her budget is spent (402) or once she asked
        for as many as an hour allows, of this instance or of all hers (429, saying when to retry)."""
        owner = record.labels.get(OWNER, "")
        self.side.check_budget(owner, f"a refresh of {record.name}'s replica")
        keys = {"replica_refreshes_per_hour": record.name, "replica_client_refreshes_per_hour": owner}
        with self._asked_lock:
            for limit, key in keys.items():
                wait = self.asked[limit].wait(key)
                if wait:
                    seconds = int(wait) + 1
                    whose = f"{record.name}'s replica" if limit == "replica_refreshes_per_hour" else f"{owner}'s replicas"
                    raise TooManyRefreshes(f"{limit}: {whose} may be refreshed {self.asked[limit].limit} per hour when "
                                           f"asked; try again in {seconds} s (the provider also refreshes the replicas "
                                           "asked for at creation on its own)", limit,
                                           {"limit": self.asked[limit].limit, "retry_after": seconds})
            for limit, key in keys.items():
                self.asked[limit].add(key)

    def charge(self, record: Record, cpu_ns: int, shipped: int) -> None:
        """Charge the owner's usage with what the refresh cost this provider: its CPU time here
        and the bytes it shipped, as egress (budgets.py sees both)."""
        try:
            self.usage.charge(record.id, record.labels.get(OWNER, ""), record.name, cpu_ns, shipped)
        except (sqlite3.Error, OSError, DockpoolError) as exc:  # the refresh is done: its charge is logged
            log.error("the refresh of %s's replica (%d ns of CPU, %d bytes shipped) was not charged: %s",
                      record.name, cpu_ns, shipped, getattr(exc, "message", exc))

    def _refresh_somewhere(self, record: Record, state: Optional[dict[str, Any]]) -> dict[str, Any]:
        """The refresh to the first holder that takes it (its current one first)."""
        takers = [m.name for m in self.members.takers() if m.name != self.config.provider_name]
        ordered = ([state["holder"]] if state and state["holder"] in takers else []) + \
            [t for t in takers if not state or t != state["holder"]]
        reasons = []
        for holder in ordered:
            member = self.members.member(holder)
            if member is None:
                continue
            delta_of = state if state and state["holder"] == holder else None
            try:
                try:
                    return self._refresh_to(record, member, delta_of)
                except _NeedsFull:
                    return self._refresh_to(record, member, None)
            except (OSError, DockpoolError) as exc:
                reasons.append(f"{holder}: {getattr(exc, 'message', exc)}")
        self.events.replica_refreshes.labels("failed").inc()
        raise Conflict(f"no member of the fleet holds a replica of {record.name}: "
                       + ("; ".join(reasons) or "no other live member takes instances"), "replica",
                       {"reasons": reasons})

    def _refresh_to(self, record: Record, member: Member, state: Optional[dict[str, Any]]) -> dict[str, Any]:
        os.makedirs(self.out, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.out) as spool:
            manifest, entries, read = self._read(record, state, spool)
            running, taken = read["running"], read["taken"]
            length = spool.tell()
            spool.seek(0)
            # Asked first: a refusal after the body started would reach this side as a cut connection.
            held = self._held(member, record.name, record.labels.get(OWNER, ""))
            if state is not None and held["refresh"] != state["refresh"]:
                raise _NeedsFull()
            room = held["room_delta" if state else "room_full"]
            limit = held.get("limit_delta" if state else "limit_full", "replica_max_bytes")
            if length > room:
                raise NoRoom(no_room(length, room, limit, record.labels.get(OWNER, ""), member.name), limit,
                             {"room": room})
            refresh = secrets.token_hex(8)
            instance = {"owner": record.labels.get(OWNER, ""), "running": running,
                        "request": move_request(self.side.manager().view(record),
                                                      record.labels.get(PUBLIC_KEY, ""))}
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(length),
                       "X-Dockpool-Instance": base64.urlsafe_b64encode(json.dumps(instance).encode()).decode(),
                       "X-Dockpool-Refresh": refresh, "X-Dockpool-Parent": state["refresh"] if state else ""}
            path = transport.route_path("v1", "fleet", "replicas", record.name)
            status, text = self.mover.ask_member(member, "PUT", path, "", data=spool, headers=headers, timeout=600)
        if status == 409 and state is not None:
            raise _NeedsFull()
        if status != 200:
            raise RefreshRefused(f"the holder answered {status}: {error_of(text)}", "replica", {"status": status})
        write_json(self._path(record.name, ".manifest"), manifest, mode=0o600)
        self._left_behind(member.name, record.name, False)
        before = self.state(record.name)
        if before and before["holder"] != member.name:  # a holder that came back must not keep a stale copy
            self._left_behind(before["holder"], record.name, True)
        state = {"holder": member.name, "refresh": refresh, "taken": taken, "full": state is None,
                 "refreshed": datetime.fromtimestamp(taken, timezone.utc).isoformat(timespec="seconds"),
                 "shipped_bytes": length, "entries": entries, "pause_seconds": read["pause_seconds"],
                 "read": read["read"]}
        self._save(record.name, state)
        self.events.replica_refreshes.labels("done").inc()
        self.events.replica_shipped.inc(length)
        if state["full"]:
            log.info("replica of %s: a full copy to %s (%d bytes)", record.name, member.name, length)
        return self.shown(record)[0]

    def _read(self, record: Record, state: Optional[dict[str, Any]],
              spool: IO[bytes]) -> tuple[Manifest, int, dict[str, Any]]:
        """Write to ``spool`` what changed in the instance since the refresh of ``state`` (all of it
        for None), as of one moment; returns the new manifest, the entries written and how it was read."""
        client = self.side.manager().client
        manifest = read_json(self._path(record.name, ".manifest")) if state else None
        attrs = client.api.inspect_container(record.id)
        running = attrs["State"]["Running"]
        layer = mounted_layer(attrs) if running else None
        live = None
        if layer is not None:  # read while it runs; frozen only to settle what changed meanwhile
            live = LiveDelta(*layer, manifest, int(state["taken"] * 1e9) if state else 0, spool)
            live.copy(time.time_ns())
        taken = time.time()
        started = time.perf_counter()
        if running:
            with engine_errors(f"pausing {record.name}"):
                client.api.pause(record.id)
        try:
            if live is not None:
                manifest, entries = live.settle()
            else:
                manifest, entries = write_delta(snapshots.exported(client, record.id), manifest, spool,
                                                state["taken"] if state else 0.0)
        finally:
            if running:
                with engine_errors(f"resuming {record.name}"):
                    client.api.unpause(record.id)
        paused = time.perf_counter() - started if running else 0.0
        return manifest, entries, {"running": running, "taken": taken, "pause_seconds": round(paused, 4),
                                   "read": "live" if live is not None else "export"}

    def _held(self, member: Member, name: str, owner: str = "", timeout: float = 30.0) -> dict[str, Any]:
        status, text = self.mover.ask_member(member, "GET", transport.route_path("v1", "fleet", "replicas", name), "",
                                             timeout=timeout, headers={"X-Dockpool-Owner": owner} if owner else None)
        self.lease.heard(member.name)  # it answered: the lease on what it holds is renewed
        if status != 200:
            raise RefreshRefused(f"the holder answered {status}: {error_of(text)}", "replica", {"status": status})
        return json.loads(text)

    # ---- the lease (lease.py) ----------------------------------------------------------------

    def keep_leases(self) -> list[str]:
        """Ask each holder that has been quiet for a quarter of the expiry; stop (never remove) the
        instances whose holder has been silent for half of it, and fence them (reconcile runs
        them again). Returns the names stopped now."""
        stopped = []
        for name in self.replicated():
            state = self.state(name)
            if not state or state.get("fenced"):
                continue
            holder = state["holder"]
            member = self.members.member(holder)
            if self.lease.to_renew(holder) and member is not None:
                try:
                    self._held(member, name, timeout=max(1.0, self.lease.expiry / 8))
                except (OSError, DockpoolError, ValueError):
                    pass  # silent: its lease runs on
            if not self.lease.lapsed(holder) or self._gone_from_the_fleet(holder):
                continue
            with self.lock(name):
                record, state = self.side.manager().find(name), self.state(name)
                if record is None or not state or state.get("fenced") or state["holder"] != holder:
                    continue
                running = record.status == "running"
                if running:  # a short grace: it must be down well before the holder may restore it
                    self.side.manager().stop(record.id, timeout=int(max(1.0, self.lease.expiry / 10)))
                self._save(name, {**state, "fenced": True, "was_running": running, "fenced_at": time.time(),
                                  "lease_silent": round(self.lease.silent(holder), 1)})
            log.warning("%s stopped: its replica's holder %s has not answered for %.1f s (half the fleet's expiry); "
                        "it runs again once the holder answers that it was not restored there",
                        name, holder, self.lease.silent(holder))
            stopped.append(name)
        return stopped

    def _gone_from_the_fleet(self, holder: str) -> bool:
        """The holder has left this provider's table while another member still answers it: the
        fleet, not a cut-off, says the holder is gone, and a dead holder restores nothing."""
        if self.members.member(holder) is not None:
            return False
        for other in self.members.takers():
            if other.name in (holder, self.config.provider_name):
                continue
            try:
                status, _ = self.mover.ask_member(other, "GET", transport.route_path("v1", "fleet", "identity"), "",
                                                  timeout=max(1.0, self.lease.expiry / 8))
            except (OSError, DockpoolError):
                continue
            if status == 200:
                return True
        return False

    def keeping_leases(self) -> None:
        """keep_leases in a thread of its own, apart from the refreshes (a refresh may take minutes)."""

        def run() -> None:
            while True:
                time.sleep(self.lease.pause())
                try:
                    self.keep_leases()
                except (OSError, DockpoolError) as exc:  # the engine is away: next time
                    log.error("replica leases: %s", getattr(exc, "message", exc))
        threading.Thread(target=run, name="replica-leases", daemon=True).start()

    # ---- after a sudden stop -----------------------------------------------------------------

    def fenced_message(self, name: str, state: dict[str, Any]) -> str:
        if state.get("fenced_at") is not None:
            return (f"{name} is stopped: its replica's holder, {state['holder']}, did not answer this provider for "
                    f"{state.get('lease_silent', 0)} s (half the fleet's expiry), so its owner might soon restore it "
                    "there; it runs again here once the holder answers that she did not")
        return (f"{name} waits for its replica's holder, {state['holder']}: this provider was away long enough "
                "for its owner to restore it there, and it runs again here only once the holder says it did not")

    def fenced(self, name: str) -> Optional[str]:
        """Why ``name`` may not start now (fence), or None."""
        state = self.state(name)
        return self.fenced_message(name, state) if state and state.get("fenced") else None

    def fence(self) -> list[str]:
        """At start, before serving: when this provider was away for half the fleet's expiry or
        more (its ``alive`` file says since when), stop every instance with a replica and keep it
        stopped until its holder answers (reconcile). Returns the names fenced."""
        try:
            away = time.time() - os.path.getmtime(self.alive)
        except FileNotFoundError:
            away = 0.0  # never ran with replicas: nothing can have been restored
        self._touch()
        if away < self.config.peer_expiry / 2:
            return []
        manager = self.side.manager()
        fenced = []
        for record in manager.records():
            state = self.state(record.name)
            if state is None:
                continue
            if record.status == "running":
                manager.stop(record.id)
            self._save(record.name, {**state, "fenced": True,
                                     "was_running": state.get("was_running") or record.status == "running"})
            fenced.append(record.name)
        if fenced:
            log.warning("away %.0f s: fenced %s until their replicas' holders answer", away, ", ".join(fenced))
        return fenced

    def replicated(self) -> list[str]:
        """The names of this provider's instances that have a replica (a state file here)."""
        if not os.path.isdir(self.out):
            return []
        return sorted(f[:-5] for f in os.listdir(self.out) if f.endswith(".json") and not f.endswith(".manifest.json"))

    def _touch(self) -> None:
        os.makedirs(os.path.dirname(self.alive), exist_ok=True)
        with open(self.alive, "a", encoding="utf-8"):
            os.utime(self.alive)

    def reconcile(self) -> list[str]:
        """Ask the holder of each fenced instance (and its earlier holders not reached since) whether
        its owner restored it there: if so remove it here and forward its owner; if not run it
        again (if it ran). A holder gone from the
        fleet for three expiries since this start cannot run a restored copy; the instance runs
        again. Returns the names settled."""
        settled = []
        expiry = self.config.peer_expiry
        for name in self.replicated():
            state = self.state(name)
            if not state or not state.get("fenced"):
                continue
            # Its holder, and any earlier holder not yet reached since: a client may have restored from either.
            holders = [state["holder"]] + [h for h, names in self._left().items() if name in names and h != state["holder"]]
            answers = {}
            for holder in holders:
                member = self.members.member(holder)
                try:
                    if member is not None:
                        answers[holder] = (member, self._held(member, name))
                except (OSError, DockpoolError) as exc:
                    log.warning("asking %s about %s: %s", holder, name, getattr(exc, "message", exc))
            restored = next(((h, m, held) for h, (m, held) in answers.items() if held.get("restored")), None)
            if restored is None and state["holder"] not in answers:
                if state.get("fenced_at") is not None:  # stopped by the lease: the holder, or the fleet, must say
                    if not self._gone_from_the_fleet(state["holder"]):
                        continue
                elif time.monotonic() - self.started < 3 * expiry:
                    continue
            record = self.side.manager().find(name)
            if restored and record is not None:
                holder, member, held = restored
                self.side.record_forward(name, record.labels.get(OWNER, ""), member, held["restored"]["as"])
                if holder != state["holder"]:  # drop below deletes at the current holder; the mark here goes too
                    self._save(name, {**state, "holder": holder})
                    self._left_behind(state["holder"], name, True)
                self.side.remove_record(record)  # and the replica's mark at the holder (drop)
                log.warning("%s was restored on %s as %s: removed here", name, holder, held["restored"]["as"])
            else:
                self._save(name, {k: v for k, v in state.items()
                                  if k not in ("fenced", "was_running", "fenced_at", "lease_silent")})
                if record is not None and state.get("was_running"):
                    self.side.manager().start(record.id)
            settled.append(name)
        return settled

    def due(self, record: Record, now: float) -> bool:
        """Whether the periodic pass refreshes ``record`` now: asked for (or every instance's, by
        the operator's replica_all), and its last refresh older than one interval."""
        config = self.config
        if record.labels.get(REPLICA) != "true" and not config.replica_all:
            return False
        state = self.state(record.name)
        # The first refresh waits one interval too: a refresh freezes the instance, and a creation
        # still waiting for its sshd would take a frozen instance for one that stopped.
        last = state["taken"] if state else datetime.fromisoformat(record.created).timestamp()
        return not (state or {}).get("fenced") and now - last >= config.replica_interval

    def refresh_due(self) -> list[str]:
        """One periodic pass: refresh every replica that is due, one at a time (each reads a whole
        filesystem; several at once would only share the disk). Returns the names refreshed."""
        refreshed = []
        for record in self.side.manager().records():
            if not self.due(record, time.time()):
                continue
            try:
                self.refresh(record)
                refreshed.append(record.name)
            except (OSError, DockpoolError) as exc:  # the next pass tries again
                log.warning("replica of %s not refreshed: %s", record.name, getattr(exc, "message", exc))
        return refreshed

    def refreshing(self) -> None:
        """The periodic pass, in a thread of its own, every gossip round (at most once a minute), and
        the lease's beside it: it marks this provider alive, settles the fenced instances, deletes the replicas left at
        holders that were away, and refreshes the replicas due."""
        pause = min(60.0, self.config.gossip_interval)
        self.keeping_leases()

        def run() -> None:
            while True:
                time.sleep(pause)
                try:
                    self._touch()
                    self.reconcile()
                    self.sweep_left()
                    self.refresh_due()
                except (OSError, DockpoolError) as exc:  # the engine or the disk is away: next time
                    log.error("replicas: %s", getattr(exc, "message", exc))
        threading.Thread(target=run, name="refresh-replicas", daemon=True).start()

    def drop(self, name: str) -> None:
        """The instance is gone from here (removed, or moved): its replica goes too, now or, if its
        holder cannot be reached, once it is back in the fleet (sweep_left)."""
        with self.lock(name):
            state = self.state(name)
            if state is None:
                return
            if not self._delete_at(state["holder"], name):
                self._left_behind(state["holder"], name, True)
            for suffix in ("", ".manifest"):
                try:
                    os.unlink(self._path(name, suffix))
                except FileNotFoundError:
                    pass

    def _delete_at(self, holder: str, name: str) -> bool:
        """Delete the replica of ``name`` at ``holder``; whether it is gone there."""
        member = self.members.member(holder)
        if member is None:
            return False
        try:
            status, _ = self.mover.ask_member(member, "DELETE", transport.route_path("v1", "fleet", "replicas", name), "", timeout=30)
        except OSError as exc:
            log.warning("could not remove the replica of %s on %s: %s", name, holder, exc)
            return False
        return status == 200

    def _left_behind(self, holder: str, name: str, left: bool) -> None:
        """Note (or forget) that ``holder`` keeps a replica of ``name`` this provider no longer uses."""
        with self._left_lock:
            table = self._left()
            names = set(table.get(holder, []))
            if (name in names) == left:
                return
            names = names | {name} if left else names - {name}
            table = {**table, holder: sorted(names)} if names else {h: n for h, n in table.items() if h != holder}
            write_json(self.left, table, mode=0o600)

    def _left(self) -> dict[str, list[str]]:
        """holder -> the names of the replicas it keeps that this provider no longer uses."""
        return read_json(self.left) if os.path.exists(self.left) else {}

    def sweep_left(self) -> list[str]:
        """Delete the replicas left at holders that were away (a holder replaced, an instance removed
        while its holder was down), at each one that is live again. Returns "holder/name" of each."""
        swept = []
        for holder, names in self._left().items():
            for name in names:
                with self.lock(name):  # not while a refresh of the same name may be choosing this holder
                    current = self.state(name)
                    if current and current.get("fenced"):
                        continue  # a stale holder may have restored it: reconcile asks it first
                    if current and current["holder"] == holder:
                        self._left_behind(holder, name, False)  # it holds the live replica again
                    elif self._delete_at(holder, name):
                        self._left_behind(holder, name, False)
                        swept.append(f"{holder}/{name}")
        return swept


class _NeedsFull(Exception):
    """The holder's chain does not end where this provider's does: send it a full copy."""

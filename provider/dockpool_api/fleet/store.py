"""The replicas this provider holds for other members of the fleet: per instance, a full copy of
its filesystem and the deltas laid over it since (deltas.py), on disk, bounded.

Each replica is a folder ``<source>/<instance>`` of tar files and ``chain.json``, the list of the
files that make it, newest last. A refresh is written to a temporary file and joins the chain
only whole (fsync, rename, then the chain rewritten atomically): a refresh cut half-way leaves
the replica as it was. A delta must name the refresh it follows; any other answer is 409 and
the source sends a full copy instead. After ``COMPACT_AFTER`` deltas the chain is merged into
one full copy again, here, without anything crossing the network.

What all replicas hold is bounded by ``replica_max_bytes`` and by the disk's free space, and
what one client's replicas hold (whichever members they come from) by her share of it,
``replica_client_share``: a refresh that does not fit is refused before a byte is written,
naming the bound.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import tarfile
import tempfile
import threading
from datetime import datetime, timezone
from typing import IO, Any, Iterator, Optional

from dockpool.atomicfile import read_json, write_json
from dockpool.errors import Conflict, DockpoolError, InvalidInput, NotFound
from dockpool.validation import validate_name

from .deltas import is_deletion

COMPACT_AFTER = 8  # deltas before the chain is merged into one full copy
FREE_MARGIN = 512 * 1024**2  # free space a refresh always leaves on the holder's disk


class NoRoom(DockpoolError):
    http_status = 507


class ReplicaStore:
    def __init__(self, directory: str, max_bytes: int, client_share: float = 1.0) -> None:
        self.directory, self.max_bytes = directory, max_bytes
        self.client_max_bytes = int(max_bytes * client_share)
        self._lock = threading.Lock()  # one change of the chains at a time

    def _folder(self, source: str, name: str) -> str:
        return os.path.join(self.directory, validate_name(source, "source"), validate_name(name, "instance"))

    def used(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.directory):
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        return total

    def chain(self, source: str, name: str) -> Optional[dict[str, Any]]:
        try:
            return read_json(os.path.join(self._folder(source, name), "chain.json"))
        except FileNotFoundError:
            return None

    def receive(self, source: str, name: str, refresh_id: str, parent: str, body: IO[bytes], length: int,
                instance: dict[str, Any]) -> dict[str, Any]:
        """Take a refresh of ``length`` bytes: a full copy (``parent`` empty) or a delta over ``parent``;
        ``instance`` is what a restore needs besides the files (its owner, request and state)."""
        if not re.fullmatch(r"[0-9a-f]{16}", refresh_id) or (parent and not re.fullmatch(r"[0-9a-f]{16}", parent)):
            raise InvalidInput("the refresh and its parent are 16 hex digits", "refresh")
        folder = self._folder(source, name)
        with self._lock:
            current = self.chain(source, name)
            if current and current.get("restored"):
                raise Conflict(f"{name} was restored here as {current['restored']['as']}: this copy is not "
                               "refreshed any more", "instance", {"restored": current["restored"]})
            if parent and (current is None or current["ids"][-1] != parent):
                raise Conflict(f"this holder's replica of {name} does not end with refresh {parent}: send a full copy",
                               "parent", {"full": True})
            room, limit = self._room(current if not parent else None, instance["owner"])
            if length > room:
                raise NoRoom(no_room(length, room, limit, instance["owner"], "this holder"), limit, {"room": room})
            os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{'delta' if parent else 'full'}-{refresh_id}.tar")
        _receive_file(body, length, path)
        with self._lock:
            current = self.chain(source, name)
            if parent and (current is None or current["ids"][-1] != parent):  # another refresh won meanwhile
                os.unlink(path)
                raise Conflict(f"the replica of {name} changed during this refresh: send a full copy", "parent",
                               {"full": True})
            old = [] if parent else (current or {}).get("files", [])
            files = ((current or {}).get("files", []) if parent else []) + [os.path.basename(path)]
            ids = ((current or {}).get("ids", []) if parent else []) + [refresh_id]
            chain = {"ids": ids, "files": files, "refreshed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "bytes": sum(os.path.getsize(os.path.join(folder, f)) for f in files), "instance": instance}
            write_json(os.path.join(folder, "chain.json"), chain, mode=0o600)
            for stale in old:
                _unlink(os.path.join(folder, stale))
        if len(files) > COMPACT_AFTER:
            self.compact(source, name)
        return self.shown(source, name)

    def _room(self, replaced: Optional[dict[str, Any]], owner: str) -> tuple[int, str]:
        """Bytes a refresh of ``owner``'s may take, and the setting that bounds it: under
        replica_max_bytes (less what is held, but the chain it replaces), the owner's share of it
        (less what her replicas hold, but that chain) and the disk's free space (less a margin)."""
        os.makedirs(self.directory, exist_ok=True)
        freed = (replaced or {}).get("bytes", 0)
        rooms = [(self.max_bytes - self.used() + freed, "replica_max_bytes"),
                 (self.client_max_bytes - self.used_by(owner) + freed, "replica_client_share"),
                 (shutil.disk_usage(self.directory).free - FREE_MARGIN, "replica_max_bytes")]
        room, limit = min(rooms, key=lambda r: r[0])
        return max(0, room), limit

    def used_by(self, owner: str) -> int:
        """What the replicas of ``owner``'s instances hold here, from every member."""
        return sum(r["bytes"] for r in self.owned_by(owner))

    def status(self, source: str, name: str, owner: str = "") -> dict[str, Any]:
        """What a source asks before it sends: the refresh the replica ends with ("" for none), the
        room for a delta over it and for a full copy, and the setting that bounds each."""
        chain = self.chain(source, name)
        owner = owner or ((chain or {}).get("instance") or {}).get("owner", "")
        room_delta, limit_delta = self._room(None, owner)
        room_full, limit_full = self._room(chain, owner)
        return {"refresh": chain["ids"][-1] if chain and chain["ids"] else "", "room_delta": room_delta,
                "room_full": room_full, "limit_delta": limit_delta, "limit_full": limit_full,
                "restored": (chain or {}).get("restored")}

    def mark_restored(self, source: str, name: str, as_name: str) -> None:
        """The replica now runs here as ``as_name``: its files go (the instance holds them now), the
        mark stays until its source, back in the fleet, has heard it and removed its own copy."""
        folder = self._folder(source, name)
        with self._lock:
            chain = self.chain(source, name) or {}
            restored = {"as": as_name, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            write_json(os.path.join(folder, "chain.json"), {**chain, "ids": [], "files": [], "bytes": 0,
                                                            "restored": restored}, mode=0o600)
            for stale in chain.get("files", []):
                _unlink(os.path.join(folder, stale))

    def owned_by(self, owner: Optional[str]) -> list[dict[str, Any]]:
        """The replicas held here of ``owner``'s instances (every one's for None), as a client sees them."""
        found = []
        for source, name in self.held():
            chain = self.chain(source, name)
            instance = (chain or {}).get("instance") or {}
            if chain is None or (owner is not None and instance.get("owner") != owner):
                continue
            found.append({"provider": source, "instance": name, "owner": instance.get("owner"),
                          "refreshed": chain["refreshed"], "bytes": chain["bytes"], "restored": chain.get("restored")})
        return found

    def shown(self, source: str, name: str) -> dict[str, Any]:
        chain = self.chain(source, name)
        if chain is None or not chain["ids"]:
            raise NotFound(f"no replica of {name} from {source} here", "instance")
        return {"instance": name, "refresh": chain["ids"][-1], "refreshed": chain["refreshed"], "bytes": chain["bytes"],
                "deltas": len(chain["files"]) - 1}

    def remove(self, source: str, name: str) -> bool:
        folder = self._folder(source, name)
        with self._lock:
            if not os.path.isdir(folder):
                return False
            shutil.rmtree(folder)
        return True

    def merged(self, source: str, name: str, out: IO[bytes]) -> int:
        """Write the replica as of its last refresh to ``out`` as one tar (what an import takes);
        returns the entries written. The newest version of each path wins; a deleted one is left out."""
        folder = self._folder(source, name)
        chain = self.chain(source, name)
        if chain is None or not chain["files"]:
            raise NotFound(f"no replica of {name} from {source} here", "instance")
        archives = [tarfile.open(os.path.join(folder, f)) for f in chain["files"]]
        try:
            newest: dict[str, tuple[tarfile.TarFile, tarfile.TarInfo]] = {}
            for archive in archives:  # oldest first: a later one replaces
                for member in archive.getmembers():
                    newest[member.name] = (archive, member)
            written = 0
            with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as writer:
                # Directories first, then files, then hard links (their targets must come before them).
                for archive, member in sorted(newest.values(), key=lambda am: (am[1].islnk(), not am[1].isdir(),
                                                                            am[1].name)):
                    if is_deletion(member):
                        continue
                    writer.addfile(member, archive.extractfile(member) if member.isreg() else None)
                    written += 1
            return written
        finally:
            for archive in archives:
                archive.close()

    def compact(self, source: str, name: str) -> None:
        """Merge the chain into one full copy (the refresh id of its last delta)."""
        folder = self._folder(source, name)
        chain = self.chain(source, name)
        if chain is None or not chain["files"]:
            return
        path = os.path.join(folder, f"full-{chain['ids'][-1]}.tar")
        fd, tmp = tempfile.mkstemp(prefix=".compact.", dir=folder)
        with os.fdopen(fd, "wb") as handle:
            self.merged(source, name, handle)
            handle.flush()
            os.fsync(handle.fileno())
        with self._lock:
            if self.chain(source, name) != chain:  # a refresh came meanwhile: compact next time
                _unlink(tmp)
                return
            os.replace(tmp, path)
            write_json(os.path.join(folder, "chain.json"), {**chain, "ids": [chain["ids"][-1]],
                                                            "files": [os.path.basename(path)],
                                                            "bytes": os.path.getsize(path)}, mode=0o600)
            for stale in chain["files"]:
                if stale != os.path.basename(path):
                    _unlink(os.path.join(folder, stale))

    def sweep(self) -> None:
        """At start: the temporary files of refreshes cut short."""
        for root, _dirs, files in os.walk(self.directory):
            for name in files:
                if name.startswith("."):
                    _unlink(os.path.join(root, name))

    def held(self) -> Iterator[tuple[str, str]]:
        """(source, instance) of every replica held here."""
        if not os.path.isdir(self.directory):
            return
        for source in sorted(os.listdir(self.directory)):
            for name in sorted(os.listdir(os.path.join(self.directory, source))):
                yield source, name


def no_room(length: int, room: int, limit: str, owner: str, holder: str) -> str:
    """Why a refresh of ``length`` bytes does not fit at ``holder``, naming the bound."""
    if limit == "replica_client_share":
        return (f"{owner}'s share of {holder} is full: a refresh of {length} bytes does not fit in the {room} bytes "
                "left of what one client's replicas may take there (replica_client_share of replica_max_bytes)")
    return (f"a refresh of {length} bytes does not fit on {holder} ({room} bytes free for replicas, "
            "replica_max_bytes and the disk's free space)")


def _receive_file(body: IO[bytes], length: int, path: str) -> None:
    """Exactly ``length`` bytes of ``body`` into ``path``, whole or not at all."""
    fd, tmp = tempfile.mkstemp(prefix=".refresh.", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            left = length
            while left:
                chunk = body.read(min(1024 * 1024, left))
                if not chunk:
                    raise InvalidInput(f"the refresh ended {left} bytes short of its length", "body")
                handle.write(chunk)
                left -= len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        tarfile.open(tmp).close()  # a tar, or refused here
        os.replace(tmp, path)
    except OSError as exc:
        _unlink(tmp)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # the disk filled since the room was asked (another writer)
            raise NoRoom(f"this holder's disk filled while the refresh was written ({exc.strerror}); the replica is "
                         "as it was", "replica_max_bytes", {"room": 0}) from exc
        raise
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass

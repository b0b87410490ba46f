"""What a replica's refresh ships: of the instance's filesystem as ``docker export`` streams it,
only the entries that changed since the refresh before, and one entry per path gone.

Changed means a different kind, size, modification time, mode, owner or link target than the
manifest the previous refresh kept (rsync's quick check): a file rewritten with the same size
in the second of the previous refresh is shipped again anyway, since tar's times may be whole
seconds. A deleted path is a header-only entry marked in its PAX header (``DELETED``), not
an OCI whiteout file a client could create by name. The holder lays the deltas over the first
full copy (store.py).

The live form (``LiveDelta``) reads the instance's mounted filesystem on this host (the
overlay's merged view) instead, so that it is frozen only for what changed while it was read.

``copy`` runs while the instance runs: it walks the whole filesystem and writes every entry
changed since the previous refresh (its inode change time is later; ctime cannot be set by a
program, unlike mtime) or new since its manifest, and one deletion per path gone. Files written
meanwhile may be torn; ``settle`` runs while the instance is frozen and makes the copy one
moment: every change since ``copy`` began is in the overlay's upper directory, so it walks only
that (what the instance itself wrote), writes again each entry changed since then, and lists
again each directory changed since then, for what was removed or moved in. Later entries of a tar win on
the holder (store.merged), so the entries written twice are read as the second.

The entries are those ``docker export`` would stream (same names, kinds and metadata), so a
manifest from either is good for the next refresh (write_delta reads the export).
Hard links are shipped as separate files.
"""
from __future__ import annotations

import io
import os
import stat
import tarfile
from typing import IO, Any, Iterable, Iterator, Optional, cast

DELETED = "DOCKPOOL.deleted"
Manifest = dict[str, list[Any]]


class ChunkReader(io.RawIOBase):
    """A file object over an iterator of chunks, for tarfile's stream mode (each chunk copied once)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks: Iterator[bytes] = iter(chunks)
        self._chunk = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._chunk:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._chunk = memoryview(chunk)
        size = min(len(buffer), len(self._chunk))
        buffer[:size] = self._chunk[:size]
        self._chunk = self._chunk[size:]
        return size


def member_key(member: tarfile.TarInfo) -> list[Any]:
    return [member.type.decode(), member.size, int(member.mtime), member.mode, member.uid, member.gid, member.linkname]


def write_delta(chunks: Iterable[bytes], previous: Optional[Manifest], out: IO[bytes],
                fresh_after: float = 0.0) -> tuple[Manifest, int]:
    """Write to ``out`` a tar of the exported entries that differ from ``previous`` (all of them
    when None: a full copy) and of the paths gone since; returns the new manifest and how many
    entries went out. ``fresh_after``: the time the previous refresh read the files; an entry
    modified in that second goes out whatever the check (a later change in the same second
    would keep its whole-second time and size)."""
    manifest: Manifest = {}
    written = 0
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), 1024 * 1024), mode="r|") as reader, \
            tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as writer:
        for member in reader:
            key = member_key(member)
            manifest[member.name] = key
            if previous is None or previous.get(member.name) != key or int(member.mtime) >= int(fresh_after):
                writer.addfile(member, reader.extractfile(member) if member.isreg() else None)
                written += 1
        for name in sorted(set(previous or {}) - set(manifest)):
            writer.addfile(deletion(name))
            written += 1
    return manifest, written


def deletion(name: str) -> tarfile.TarInfo:
    """The header-only entry that says ``name`` is gone (is_deletion reads it)."""
    entry = tarfile.TarInfo(name)
    entry.pax_headers = {DELETED: "1"}
    return entry


def is_deletion(member: tarfile.TarInfo) -> bool:
    return member.pax_headers.get(DELETED) == "1"


DIRECTORY = tarfile.DIRTYPE.decode()  # the kind a manifest gives a directory (member_key)
SLACK_NS = 50_000_000  # the kernel stamps ctime from a coarse clock, a tick behind time.time_ns()


def _walk(root: str, top: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every entry under ``root``, parents first; not into other filesystems."""
    device = os.lstat(root).st_dev
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(os.path.join(root, folder)), key=lambda e: e.name)
        except FileNotFoundError:  # removed while the instance runs: settle sees its parent change
            continue
        for entry in entries:
            path = f"{folder}/{entry.name}" if folder else entry.name
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield path, info
            if stat.S_ISDIR(info.st_mode) and info.st_dev == device:
                stack.append(path)


class LiveDelta:
    def __init__(self, merged: str, upper: str, previous: Optional[Manifest], since_ns: int, out: IO[bytes]) -> None:
        """``previous``: the last refresh's manifest (None: a full copy); ``since_ns``: when that
        refresh froze the instance."""
        self.merged, self.upper, self.since = merged, upper, since_ns - SLACK_NS
        self.previous: Manifest = previous or {}
        self.full = previous is None
        self.manifest: Manifest = {}
        self.written = 0
        self.writer = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self.started = 0

    def _add(self, path: str) -> None:
        full = os.path.join(self.merged, path)
        try:
            info = self.writer.gettarinfo(full, arcname=path)
        except FileNotFoundError:
            return
        # A hard link's target may not be in this delta: ship its content (TarFile's table of the
        # inodes it wrote, which typeshed does not declare).
        cast(Any, self.writer).inodes.clear()
        if info is None:  # a socket: not in a tar, nor in docker export
            return
        info.uname = info.gname = ""  # this host's names for the ids mean nothing in the instance; ids do
        self.manifest[path] = member_key(info)
        if info.isreg():
            try:
                with open(full, "rb") as handle:
                    self.writer.addfile(info, handle)
            except FileNotFoundError:
                self.manifest.pop(path)
                return
        else:
            self.writer.addfile(info)
        self.written += 1

    def _gone(self, path: str) -> None:
        self.writer.addfile(deletion(path))
        self.written += 1

    def _delete(self, path: str) -> None:
        """``path`` and everything the manifest has under it: gone."""
        for name in [path] + [p for p in self.manifest if p.startswith(path + "/")]:
            del self.manifest[name]
            self._gone(name)

    def copy(self, started_ns: int) -> None:
        """While the instance runs (``started_ns``: now): the whole filesystem against the manifest."""
        self.started = started_ns - SLACK_NS
        self.manifest = dict(self.previous)
        seen = set()
        for path, info in _walk(self.merged):
            seen.add(path)
            if self.full or path not in self.previous or info.st_ctime_ns >= self.since:
                self._add(path)
        for path in sorted(set(self.previous) - seen):  # every path gone is listed, children too
            self.manifest.pop(path, None)
            self._gone(path)

    def settle(self) -> tuple[Manifest, int]:
        """While the instance is frozen: what changed since ``copy`` began. Returns the new manifest
        and how many entries went out."""
        changed_dirs = [""] if os.lstat(self.upper).st_ctime_ns >= self.started else []
        for path, info in _walk(self.upper):
            if info.st_ctime_ns < self.started:
                continue
            if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:  # a whiteout: its parent's listing says it
                continue
            if stat.S_ISDIR(info.st_mode):
                changed_dirs.append(path)
            self._add(path)
        if changed_dirs:
            children: dict[str, list[str]] = {}
            for path in self.manifest:
                parent, _sep, name = path.rpartition("/")
                children.setdefault(parent, []).append(name)
            for folder in changed_dirs:
                try:
                    now = set(os.listdir(os.path.join(self.merged, folder)))
                except FileNotFoundError:
                    continue
                for name in children.get(folder, []):
                    path = f"{folder}/{name}" if folder else name
                    if name not in now and path in self.manifest:
                        self._delete(path)
                for name in now:  # renamed here meanwhile: a moved directory's entries keep their old ctime
                    path = f"{folder}/{name}" if folder else name
                    if path not in self.manifest:
                        self._add(path)
                        if self.manifest.get(path, [""])[0] == DIRECTORY:
                            for inner, _info in _walk(self.merged, path):
                                self._add(inner)
        self.writer.close()
        return self.manifest, self.written

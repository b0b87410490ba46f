"""What a replica's refresh ships: of the instance's filesystem as ``docker export`` streams it,
only the entries that changed since the refresh before, and one entry per path gone.

Changed means a different kind, size, modification time, mode, owner or link target than the
manifest the previous refresh kept (rsync's quick check): a file rewritten with the same size
in the second of the previous refresh is shipped again anyway, since tar's times may be whole
seconds. A deleted path is a header-only entry marked in its PAX header (``DELETED``), not
an OCI whiteout file a client could create by name. The holder lays the deltas over the first
full copy (replica_store.py).
"""
from __future__ import annotations

import io
import tarfile
from typing import IO, Any, Iterable, Iterator, Optional

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

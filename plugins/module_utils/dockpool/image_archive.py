"""Checking a ``docker save`` archive as it streams in, before the engine keeps any of it.

A move's target loads what another provider sends. The engine's ``load`` would take any
image and tag an archive names (overwriting the images every client runs) and would
decompress compressed members (a small archive, a large image). So the archive passes
through ``checked()``, which reads its tar headers as the bytes go by and stops the stream
(the engine then registers nothing: it does so only at the archive's end) when:

- a member is not a plain file, a directory or a symlink inside the archive, its name is
  absolute or climbs out, it appears twice, or a header's checksum is wrong;
- a file starts like a compressed stream (gzip, bzip2, xz, zstd): layers in a ``docker save``
  archive are plain tars, so the bytes counted are the bytes the image will take;
- the archive's manifest (``manifest.json``, last in Docker's archives, held back until it
  is read whole), ``repositories`` or OCI ``index.json`` name any image or tag but the one
  snapshot the move is about.
"""
from __future__ import annotations

import json
import posixpath
from typing import Any, Iterable, Iterator, Optional

from .errors import InvalidInput

BLOCK = 512
PIECE = 1024 * 1024
HELD = ("manifest.json", "repositories", "index.json")  # read whole, checked, then passed on
MAX_HELD = 1024 * 1024
COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
FIELD = "archive"


def refuse(problem: str) -> InvalidInput:
    return InvalidInput(f"the snapshot archive was refused: {problem}", FIELD)


class _Source:
    """Exact reads over an iterable of chunks, without joining more than a read asks for."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._chunk, self._at = b"", 0

    def _fill(self) -> bool:
        while self._at >= len(self._chunk):
            nxt = next(self._chunks, None)
            if nxt is None:
                return False
            self._chunk, self._at = bytes(nxt), 0
        return True

    def some(self, most: int) -> bytes:
        """Up to ``most`` bytes (at least one), or b'' at the end."""
        if not self._fill():
            return b""
        piece = self._chunk[self._at:self._at + most]
        self._at += len(piece)
        return piece

    def exact(self, size: int) -> Optional[bytes]:
        """``size`` bytes; None at a clean end before the first; an error when cut in the middle."""
        parts, got = [], 0
        while got < size:
            piece = self.some(size - got)
            if not piece:
                if got == 0:
                    return None
                raise refuse("it ends in the middle of a member")
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)


def _header(block: bytes) -> tuple[str, int, bytes, str]:
    """(name, size, type, link target) of a ustar header, its checksum verified."""
    stored = block[148:156].replace(b"\0", b" ").strip()
    if not stored or not stored.isdigit() or int(stored, 8) != sum(block[:148]) + 8 * 32 + sum(block[156:]):
        raise refuse("a tar header's checksum is wrong (not a docker save archive)")
    size_field = block[124:136]
    if size_field[:1] and size_field[0] & 0x80:
        raise refuse("a member's size is in base-256 (larger than any snapshot)")
    size_text = size_field.replace(b"\0", b" ").strip() or b"0"
    if not size_text.isdigit():
        raise refuse("a member's size is not a number")
    name = block[:100].split(b"\0", 1)[0]
    if block[257:262] == b"ustar" and block[345:500].strip(b"\0"):
        name = block[345:500].split(b"\0", 1)[0] + b"/" + name
    link = block[157:257].split(b"\0", 1)[0]
    try:
        return name.decode("ascii"), int(size_text, 8), block[156:157], link.decode("ascii")
    except UnicodeDecodeError:
        raise refuse("a member's name is not ASCII") from None


def _safe(path: str) -> bool:
    normal = posixpath.normpath(path) if path else ""
    return bool(normal) and not normal.startswith(("/", "../")) and normal != ".." and "\\" not in path


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise refuse(problem)


def _check_held(name: str, data: bytes, ref: str) -> None:
    """The archive's index files name exactly one image: ``ref``."""
    repository, tag = ref.rsplit(":", 1)
    try:
        value: Any = json.loads(data)
    except ValueError:
        raise refuse(f"{name} is not JSON") from None
    if name == "manifest.json":
        _expect(isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict),
                "manifest.json must describe exactly one image")
        _expect(value[0].get("RepoTags") == [ref], f"the image must be tagged {ref} and nothing else, "
                f"not {value[0].get('RepoTags')!r}")
        layers = value[0].get("Layers")
        _expect(isinstance(layers, list) and all(isinstance(p, str) and _safe(p) for p in layers)
                and isinstance(value[0].get("Config"), str) and _safe(value[0]["Config"]),
                "manifest.json's layer and config paths must stay inside the archive")
    elif name == "repositories":
        _expect(isinstance(value, dict) and list(value) == [repository] and isinstance(value[repository], dict)
                and list(value[repository]) == [tag], f"repositories must name {ref} only")
    else:
        manifests = value.get("manifests") if isinstance(value, dict) else None
        _expect(isinstance(manifests, list) and len(manifests) == 1 and isinstance(manifests[0], dict),
                "index.json must describe exactly one image")
        notes = manifests[0].get("annotations") or {}
        _expect(isinstance(notes, dict), "index.json's annotations must be an object")
        named = notes.get("io.containerd.image.name")
        _expect(named in (None, ref, f"docker.io/{ref}", f"docker.io/library/{ref}")
                and notes.get("org.opencontainers.image.ref.name") in (None, tag), f"index.json must name {ref} only")


def checked(chunks: Iterable[bytes], ref: str) -> Iterator[bytes]:
    """The archive's bytes, unchanged, for as long as it is the one snapshot ``ref``."""
    source, seen, ended, manifest = _Source(chunks), set(), False, False
    while True:
        block = source.exact(BLOCK)
        if block is None:
            break
        if ended or block == bytes(BLOCK):
            _expect(block == bytes(BLOCK), "data after the archive's end")
            ended = True
            yield block
            continue
        name, size, kind, link = _header(block)
        _expect(kind in (b"0", b"\0", b"5", b"2"), f"{name}: only files, directories and links are allowed")
        _expect(_safe(name) and name not in seen, f"{name}: a name outside the archive, or twice")
        seen.add(name)
        padded = -(-size // BLOCK) * BLOCK
        if kind == b"2":
            _expect(_safe(posixpath.join(posixpath.dirname(name), link)) and not link.startswith("/") and size == 0,
                    f"{name}: a link out of the archive")
        if name in HELD and kind != b"5":
            _expect(size <= MAX_HELD, f"{name} is over {MAX_HELD} bytes")
            data = source.exact(padded) or b""
            _expect(len(data) == padded, f"{name} is cut short")
            _check_held(name, data[:size], ref)
            manifest = manifest or name == "manifest.json"
            yield block + data
            continue
        yield block
        left = padded
        if kind in (b"0", b"\0") and size:
            head = source.exact(min(6, size)) or b""
            _expect(not any(head.startswith(magic) for magic in COMPRESSED),
                    f"{name} is compressed; a snapshot's layers are plain tars")
            left -= len(head)
            yield head
        while left:
            piece = source.some(min(left, PIECE))
            _expect(bool(piece), "it ends in the middle of a member")
            left -= len(piece)
            yield piece
    _expect(ended and manifest, "it has no end marker or no manifest.json")

"""Checking a moved instance's filesystem (``docker export``'s tar) as it streams into the
target's engine (``docker import``), before the engine keeps any of it.

The engine imports one image under the name and tag the target chose, so a stream cannot
name or overwrite other images. What remains for the stream to get wrong, and what
``checked()`` stops it for (the engine then keeps nothing: an import cut off mid-stream
fails as a whole):

- a compressed stream (gzip, bzip2, xz, zstd): the engine would inflate it, so a small
  stream would become a large image; an export is a plain tar, so the bytes counted are
  the bytes the image will take;
- a tar header whose checksum is wrong (not an export), or a device node but the standard
  ones Docker lays in every container's /dev (an instance cannot make one, and a provider
  never wants another in a client's image);
- a stream that ends before the tar's end marker: the engine would keep what came as a
  whole image, so a source dying mid-transfer must not look like an ending.

Paths that climb out of the image are the engine's to refuse (it does so for every layer).
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional

from .errors import InvalidInput

BLOCK = 512
PIECE = 1024 * 1024
COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
FIELD = "archive"
CHARACTER, BLOCK_DEVICE = b"3", b"4"
# The character devices Docker itself lays in every container's /dev (null, zero, full, random,
# urandom, tty, console, ptmx), by (major, minor); the runtime mounts its own /dev over them.
STANDARD_DEVICES = {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)}


def refuse(problem: str) -> InvalidInput:
    return InvalidInput(f"the moved filesystem was refused: {problem}", FIELD)


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


def _size(field: bytes) -> int:
    """A header's size: octal text, or base-256 (GNU's form for members over 8 GiB)."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.replace(b"\0", b" ").strip() or b"0"
    if not text.isdigit() or b"8" in text or b"9" in text:
        raise refuse("a member's size is not a number")
    return int(text, 8)


def _header(block: bytes) -> tuple[int, bytes]:
    """(size, type) of a tar header, its checksum verified."""
    stored = block[148:156].replace(b"\0", b" ").strip()
    if not stored or not stored.isdigit() or int(stored, 8) != sum(block[:148]) + 8 * 32 + sum(block[156:]):
        raise refuse("a tar header's checksum is wrong (not an exported filesystem)")
    return _size(block[124:136]), block[156:157]


def _device(block: bytes) -> tuple[int, int]:
    """A device header's (major, minor)."""
    return _size(block[329:337]), _size(block[337:345])


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise refuse(problem)


def checked(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The stream's bytes, unchanged, for as long as it is a plain, whole tar of a filesystem."""
    source, zeros = _Source(chunks), 0  # the end marker is two blocks of zeros
    head = b""
    while len(head) < BLOCK and (piece := source.some(BLOCK - len(head))):
        head += piece
    _expect(not any(head.startswith(magic) for magic in COMPRESSED), "it is compressed; an export is a plain tar")
    _expect(len(head) in (0, BLOCK), "it ends in the middle of a member")
    block: Optional[bytes] = head or None
    while block is not None:
        if zeros >= 2 or block == bytes(BLOCK):
            _expect(block == bytes(BLOCK), "data after the tar's end")
            zeros += 1
            yield block
            block = source.exact(BLOCK)
            continue
        size, kind = _header(block)
        _expect(kind != BLOCK_DEVICE and (kind != CHARACTER or _device(block) in STANDARD_DEVICES),
                "it holds a device node (only Docker's standard /dev ones may come)")
        yield block
        left = -(-size // BLOCK) * BLOCK
        while left:
            piece = source.some(min(left, PIECE))
            _expect(bool(piece), "it ends in the middle of a member")
            left -= len(piece)
            yield piece
        block = source.exact(BLOCK)
    _expect(zeros >= 2, "it ends before the tar's end marker (the source stopped sending)")

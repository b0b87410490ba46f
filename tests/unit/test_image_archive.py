"""The check a moved filesystem passes as it streams into the target's engine (image_archive.py):
a plain, whole tar without device nodes passes byte for byte; anything else is stopped before
the bytes that carry the problem reach the engine."""
from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from dockpool.errors import InvalidInput
from dockpool.image_archive import checked


def member(archive: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "",
           device: tuple[int, int] = (0, 0)) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    info.devmajor, info.devminor = device
    archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def filesystem(extra=(), tar_format: int = tarfile.PAX_FORMAT) -> bytes:
    """A filesystem as docker export writes it (PAX headers for long and non-ASCII names, links)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tar_format) as tar:
        member(tar, "etc", kind=tarfile.DIRTYPE)
        member(tar, "etc/motd", b"hello\n")
        member(tar, "root/" + "deep/" * 40 + "notes-é.txt", b"my notes\n" * 300)  # a PAX path
        member(tar, "root/notes.gz", gzip.compress(b"a client's own compressed file"))
        member(tar, "usr/bin/sh", b"", tarfile.SYMTYPE, "dash")
        member(tar, "usr/bin/sh2", b"", tarfile.LNKTYPE, "usr/bin/sh")
        member(tar, "run/fifo", b"", tarfile.FIFOTYPE)
        member(tar, "dev/null", b"", tarfile.CHRTYPE, device=(1, 3))  # Docker lays these in every container
        member(tar, "dev/ptmx", b"", tarfile.CHRTYPE, device=(5, 2))
        for args in extra:
            member(tar, *args)
    return out.getvalue()


def members_end() -> int:
    """Where filesystem()'s members end and its end marker begins."""
    last = tarfile.open(fileobj=io.BytesIO(filesystem())).getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


def run(data: bytes, piece: int = 777) -> bytes:
    """Feed the stream in odd-sized chunks (headers and magic bytes split across them)."""
    return b"".join(checked(data[i:i + piece] for i in range(0, len(data), piece)))


def test_a_filesystem_passes_byte_for_byte_in_any_chunking():
    data = filesystem()
    assert run(data) == data and run(data, 1) == data and run(data, 1 << 20) == data
    assert run(data + bytes(8192)) == data + bytes(8192)  # zero records after the end marker, as GNU tar pads


@pytest.mark.parametrize("data, says", [
    (gzip.compress(filesystem()), "compressed"),
    (b"\x28\xb5\x2f\xfd" + bytes(1000), "compressed"),
    (filesystem(extra=[("dev/sda", b"", tarfile.BLKTYPE, "", (8, 0))]), "device node"),
    (filesystem(extra=[("dev/mem", b"", tarfile.CHRTYPE, "", (1, 1))]), "device node"),
    (filesystem(extra=[("root/kmsg", b"", tarfile.CHRTYPE, "", (1, 11))]), "device node"),
    (b"not a tar at all" * 64, "checksum"),
    (filesystem()[:4096], "ends in the middle|end marker"),
    (filesystem()[:1536], "end marker"),  # cut at a member's boundary: a whole-looking tar to the engine
    (filesystem() + b"trailing junk" + bytes(499), "after the tar's end"),
    (filesystem()[:members_end()] + bytes(512), "end marker"),  # one block of zeros: half an end marker
])
def test_anything_else_is_refused_naming_why(data, says):
    with pytest.raises(InvalidInput, match=says) as refused:
        run(data)
    assert refused.value.field == "archive"


def test_a_refusal_comes_before_the_bytes_that_carry_the_problem_are_passed_on():
    """A compressed stream is stopped at its first bytes, a device node at its header."""
    bomb = gzip.compress(bytes(1 << 20))
    passed = bytearray()
    with pytest.raises(InvalidInput):
        for chunk in checked([bomb]):
            passed += chunk
    assert not passed
    device = filesystem(extra=[("dev/sda", b"", tarfile.BLKTYPE, "", (8, 0))])
    passed = bytearray()
    with pytest.raises(InvalidInput):
        for chunk in checked([device]):
            passed += chunk
    assert b"dev/sda" not in passed

"""The streaming check of a move's archive on crafted tars: what it passes unchanged and what
it stops (the same archives against the real engine: tests/integration/test_image_archive.py)."""
from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from dockpool.errors import InvalidInput
from dockpool.image_archive import checked

REF = "dockpool-move/alice-a-1:0123456789abcdef"
LAYER = "a" * 64 + "/layer.tar"


def member(archive: tarfile.TarFile, name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def layer_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as inner:
        member(inner, "etc/motd", b"hello\n")
    return out.getvalue()


def archive(tags=(REF,), layer: bytes = b"", extra=(), manifest_last: bool = True) -> bytes:
    out = io.BytesIO()
    manifest = json.dumps([{"Config": "c" * 64 + ".json", "RepoTags": list(tags), "Layers": [LAYER]}]).encode()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        if not manifest_last:
            member(tar, "manifest.json", manifest)
        member(tar, "c" * 64 + ".json", b'{"config": {}}')
        member(tar, "a" * 64, kind=tarfile.DIRTYPE)
        member(tar, LAYER, layer or layer_tar())
        for args in extra:
            member(tar, *args)
        if manifest_last:
            member(tar, "manifest.json", manifest)
        repo, tag = REF.rsplit(":", 1)
        member(tar, "repositories", json.dumps({repo: {tag: "a" * 64}}).encode())
    return out.getvalue()


def run(data: bytes, piece: int = 777) -> bytes:
    """Feed the archive in odd-sized chunks (headers and magic bytes split across them)."""
    return b"".join(checked((data[i:i + piece] for i in range(0, len(data), piece)), REF))


def test_the_one_snapshot_named_passes_byte_for_byte_in_any_chunking():
    data = archive()
    assert run(data) == data and run(data, 1) == data and run(data, 1 << 20) == data
    assert run(archive(manifest_last=False)) == archive(manifest_last=False)


@pytest.mark.parametrize("data, says", [
    (archive(tags=(REF, "dockpool/debian-sshd:latest")), "tagged"),
    (archive(tags=("dockpool/debian-sshd:latest",)), "tagged"),
    (archive(tags=()), "tagged"),
    (archive(layer=gzip.compress(layer_tar())), "compressed"),
    (archive(layer=b"\x28\xb5\x2f\xfd" + bytes(100)), "compressed"),
    (archive(extra=[("../escape", b"x")]), "outside the archive"),
    (archive(extra=[("/etc/passwd", b"x")]), "outside the archive"),
    (archive(extra=[("b" * 64 + "/layer.tar", b"", tarfile.SYMTYPE, "../../etc/shadow")]), "link out"),
    (archive(extra=[("dev", b"", tarfile.CHRTYPE)]), "only files"),
    (archive(extra=[("manifest.json", b"[]")]), "exactly one image"),
    (gzip.compress(archive()), "checksum|ends in the middle"),
    (b"not a tar at all" * 64, "checksum"),
    (archive()[:5000], "ends in the middle"),
    (archive() + b"trailing junk" + bytes(499), "after the archive's end"),
])
def test_everything_but_that_one_image_is_refused_naming_why(data, says):
    with pytest.raises(InvalidInput, match=says) as refused:
        run(data)
    assert refused.value.field == "archive"


def test_a_refusal_comes_before_the_bytes_that_carry_the_problem_are_passed_on():
    """The engine registers an image at the archive's end: the manifest is held until checked, and a
    compressed layer is stopped at its first bytes, so nothing after them ever reaches the engine."""
    data = archive(tags=("dockpool/debian-sshd:latest",))
    passed = bytearray()
    with pytest.raises(InvalidInput):
        for chunk in checked([data], REF):
            passed += chunk
    assert b"dockpool/debian-sshd" not in passed and b"manifest.json" not in passed
    bomb = archive(layer=gzip.compress(bytes(1 << 20)))
    passed = bytearray()
    with pytest.raises(InvalidInput):
        for chunk in checked([bomb], REF):
            passed += chunk
    assert len(passed) < bomb.index(b"\x1f\x8b") + 1

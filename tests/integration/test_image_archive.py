"""A move's archive against the real engine: the one snapshot named loads; an archive that would
retag the image every client runs, or a small archive that decompresses into a large image,
is refused before the engine keeps anything, and the engine's images are what they were."""
from __future__ import annotations

import io
import json
import secrets
import tarfile
import zlib

import pytest

from dockpool import moves
from dockpool.errors import InvalidInput

pytestmark = pytest.mark.engine
SHARED = "dockpool/debian-sshd:latest"  # what every client's instance runs


@pytest.fixture
def snapshot(engine):
    """A small image shaped as a move's snapshot: dockpool-move/NAME:ID, labelled with the move."""
    move_id = secrets.token_hex(8)
    ref = moves.snapshot_ref("alice-archive-1", move_id)
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = f"FROM scratch\nCOPY notes /root/notes\nLABEL {moves.MOVE_LABEL}={move_id}\n".encode()
        for name, data in (("Dockerfile", dockerfile), ("notes", b"mine\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    engine.images.build(fileobj=context, custom_context=True, tag=ref, rm=True)
    yield ref, move_id
    moves.remove_snapshot(engine, ref)


def saved(engine, ref: str) -> bytes:
    return b"".join(engine.api.get_image(ref))


def rewritten(data: bytes, manifest_tags=None, layer=None) -> bytes:
    """The archive with its manifest's tags (and repositories) or its layer's content replaced."""
    source = tarfile.open(fileobj=io.BytesIO(data))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info in source.getmembers():
            content = source.extractfile(info).read() if info.isfile() else None
            if info.name == "manifest.json" and manifest_tags is not None:
                manifest = json.loads(content)
                manifest[0]["RepoTags"] = manifest_tags
                content = json.dumps(manifest).encode()
            if info.name == "repositories" and manifest_tags is not None:
                content = json.dumps({t.rsplit(":", 1)[0]: {t.rsplit(":", 1)[1]: "x"} for t in manifest_tags}).encode()
            if info.name.endswith("/layer.tar") and layer is not None:
                content = layer
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return out.getvalue()


def images(engine) -> dict[str, list[str]]:
    return {i["Id"]: sorted(i.get("RepoTags") or []) for i in engine.api.images(all=True)}


def test_the_one_snapshot_named_loads(engine, snapshot):
    ref, move_id = snapshot
    data = saved(engine, ref)
    engine.images.remove(ref, force=True)
    assert moves.load(engine, iter([data[i:i + 65536] for i in range(0, len(data), 65536)]), ref, move_id) == ref
    assert engine.images.get(ref).labels[moves.MOVE_LABEL] == move_id


@pytest.mark.parametrize("tags", [[None, SHARED], [SHARED]])
def test_an_archive_that_would_retag_the_image_every_client_runs_is_refused(engine, snapshot, tags):
    ref, move_id = snapshot
    poisoned = rewritten(saved(engine, ref), manifest_tags=[ref if t is None else t for t in tags])
    engine.images.remove(ref, force=True)
    before, shared = images(engine), engine.images.get(SHARED).id
    with pytest.raises(InvalidInput, match="tagged") as refused:
        moves.load(engine, iter([poisoned]), ref, move_id)
    assert refused.value.field == "archive"
    assert engine.images.get(SHARED).id == shared  # still the provider's own build
    assert images(engine) == before  # nothing kept, nothing retagged


def test_a_small_archive_that_would_decompress_into_a_large_image_is_refused(engine, snapshot):
    ref, move_id = snapshot
    # A layer of 256 MiB of zeros in a tar, gzip-compressed: about 250 KiB on the wire.
    header = tarfile.TarInfo("fill")
    header.size = 256 * 1024**2
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = squeeze.compress(header.tobuf(format=tarfile.USTAR_FORMAT))
    for _ in range(256):
        bomb += squeeze.compress(bytes(1024**2))
    bomb += squeeze.compress(bytes(1024)) + squeeze.flush()
    assert len(bomb) < 1024**2
    archive = rewritten(saved(engine, ref), layer=bomb)
    engine.images.remove(ref, force=True)
    before = images(engine)
    with pytest.raises(InvalidInput, match="compressed"):
        moves.load(engine, iter([archive]), ref, move_id)
    assert images(engine) == before

"""A move's filesystem against the real engine: a stopped instance's export imports as the one
snapshot the target names, with the target's own image settings; a compressed stream (a small
stream that would inflate into a large image) or one cut short is refused, and the engine's
images are what they were."""
from __future__ import annotations

import gzip
import io
import secrets
import tarfile

import pytest

from dockpool import snapshots
from dockpool.errors import InvalidInput

pytestmark = pytest.mark.engine
SHARED = "dockpool/debian-sshd:latest"  # what every client's instance runs


@pytest.fixture
def stopped(engine):
    """A stopped instance of the image every client runs, with a file written and one removed;
    and the snapshot name and move id a move would import it under."""
    container = engine.containers.create(SHARED, command=["true"])
    notes = io.BytesIO()
    with tarfile.open(fileobj=notes, mode="w") as tar:
        info = tarfile.TarInfo("notes.txt")
        info.size = 9
        tar.addfile(info, io.BytesIO(b"my notes\n"))
    container.put_archive("/root", notes.getvalue())
    move_id = secrets.token_hex(8)
    ref = snapshots.snapshot_ref("alice-archive-1", move_id)
    yield container, ref, move_id
    container.remove(force=True)
    snapshots.remove_snapshot(engine, ref)


def images(engine) -> dict[str, list[str]]:
    return {i["Id"]: sorted(i.get("RepoTags") or []) for i in engine.api.images(all=True)}


def exported(engine, container) -> bytes:
    return b"".join(snapshots.exported(engine, container.id))


def test_the_filesystem_imports_as_the_snapshot_with_the_images_own_settings(engine, stopped):
    container, ref, move_id = stopped
    config = engine.api.inspect_image(SHARED)["Config"]
    data = exported(engine, container)
    shared = engine.images.get(SHARED).id
    assert snapshots.load(engine, iter([data[i:i + 65536] for i in range(0, len(data), 65536)]), ref, move_id, config) == ref
    got = engine.api.inspect_image(ref)["Config"]
    assert got["Labels"] == {**config["Labels"], snapshots.MOVE_LABEL: move_id}  # the ports label among them, JSON and quotes
    assert (got["Entrypoint"], got["Cmd"], got["Env"], got["ExposedPorts"]) == (
        config["Entrypoint"], config["Cmd"], config["Env"], config["ExposedPorts"])
    assert engine.containers.run(ref, ["cat", "/root/notes.txt"], entrypoint=[], remove=True) == b"my notes\n"
    assert engine.images.get(SHARED).id == shared  # the image every client runs is untouched


def test_a_compressed_stream_is_refused_before_the_engine_inflates_it(engine, stopped):
    container, ref, move_id = stopped
    squeezed = gzip.compress(exported(engine, container), compresslevel=1)
    before = images(engine)
    with pytest.raises(InvalidInput, match="compressed") as refused:
        snapshots.load(engine, iter([squeezed]), ref, move_id, engine.api.inspect_image(SHARED)["Config"])
    assert refused.value.field == "archive"
    assert images(engine) == before


def test_a_stream_cut_between_two_files_leaves_no_image(engine, stopped):
    """The engine would take a tar that stops at a file's boundary for a whole one: the check
    stops the upload instead, and the engine keeps nothing."""
    container, ref, move_id = stopped
    data = exported(engine, container)
    members = tarfile.open(fileobj=io.BytesIO(data)).getmembers()
    cut = members[len(members) // 2].offset  # a header's start: everything before it is whole files
    before = images(engine)
    with pytest.raises(InvalidInput, match="end marker"):
        snapshots.load(engine, iter([data[:cut]]), ref, move_id, engine.api.inspect_image(SHARED)["Config"])
    assert images(engine) == before


def test_a_member_sending_an_image_archive_naming_every_clients_image_gets_files_never_a_tag(engine, stopped):
    """The first finding of issue 22: an archive made to retag the image every client runs. Through
    the import it is a filesystem like any other: the image is the snapshot's, the tag the
    target's; the image every client runs keeps its id and no other tag appears."""
    container, ref, move_id = stopped
    poisoned = b"".join(engine.api.get_image(SHARED))  # docker save, naming dockpool/debian-sshd:latest
    shared, before = engine.images.get(SHARED).id, images(engine)
    assert snapshots.load(engine, iter([poisoned]), ref, move_id, engine.api.inspect_image(SHARED)["Config"]) == ref
    assert engine.images.get(SHARED).id == shared
    after = images(engine)
    new = {image: tags for image, tags in after.items() if image not in before}
    assert list(new.values()) == [[ref]]
    holder = engine.containers.create(ref, command=["none"], entrypoint=[])  # no shell in it: read it from outside
    stored, _ = holder.get_archive("/manifest.json")
    holder.remove()
    assert b"dockpool/debian-sshd:latest" in b"".join(stored)  # the archive's manifest is a file in the snapshot

"""Moving an instance between providers: a snapshot of it as an image, streamed out of one
engine and into another, never held whole in memory.

The snapshot is ``docker commit`` of the stopped instance: the image it runs (whatever
this provider built) plus one layer of everything the client wrote or installed. That
image, as ``docker save`` streams it, is what crosses; the target loads it as it comes.
(Exporting the writable layer alone would leave the target to lay it over its own build
of the image, which differs file by file between providers: a package database written
over other packages' files. The commit carries the base it was written on.)
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

from . import image_archive
from .engine import engine_errors
from .errors import DockpoolError, InvalidInput, NotFound
from .labels import PREFIX

REPOSITORY = "dockpool-move"  # snapshot images: dockpool-move/<instance>:<move id>
MOVE_LABEL = PREFIX + "move"  # on a snapshot image: the move it belongs to
CHUNK = 1024 * 1024


class TooLarge(DockpoolError):
    http_status = 413


def snapshot(client: Any, container_id: str, name: str, move_id: str) -> str:
    """Commit the (stopped) instance as dockpool-move/<name>:<move id>; returns that name
    (saved by name, the archive carries it: saved by id, it would load untagged)."""
    ref = snapshot_ref(name, move_id)
    with engine_errors(f"taking a snapshot of {name!r}"):
        client.api.commit(container_id, repository=f"{REPOSITORY}/{name}", tag=move_id,
                          changes=[f"LABEL {MOVE_LABEL}={move_id}"], pause=False)
    return ref


def saved(client: Any, image_id: str) -> Iterator[bytes]:
    """The image as ``docker save`` streams it, a chunk at a time."""
    with engine_errors("streaming the snapshot"):
        yield from client.api.get_image(image_id, chunk_size=CHUNK)


class Bounded:
    """Chunks passed through while counting them; over ``limit`` bytes, the stream stops with TooLarge."""

    def __init__(self, chunks: Iterable[bytes], limit: int) -> None:
        self.chunks, self.limit, self.count = chunks, limit, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.count += len(chunk)
            if self.count > self.limit:
                raise TooLarge(f"the snapshot exceeds {self.limit} bytes (the instance's disk limit and its image)",
                               "disk_limit", {"max": self.limit})
            yield chunk


def snapshot_ref(name: str, move_id: str) -> str:
    return f"{REPOSITORY}/{name}:{move_id}"


def load(client: Any, chunks: Iterable[bytes], ref: str, move_id: str) -> str:
    """Load a streamed ``docker save`` archive that must hold exactly the snapshot ``ref`` (checked
    as it streams: image_archive.py); returns ``ref``. A broken or refused stream leaves no image
    (the engine registers it only at the archive's end); whatever a failed load still brought
    (an image that is not ours, ours without the move's label) is removed."""
    with engine_errors("listing images"):
        before = {i["Id"] for i in client.api.images(all=True)}
    try:
        with engine_errors("loading the snapshot"):
            messages = client.api.load_image(iter(image_archive.checked(chunks, ref)), quiet=False)
            text = " ".join(json.dumps(m) if isinstance(m, dict) else str(m) for m in messages)
        with engine_errors("finding the loaded snapshot"):
            try:
                labels = (client.api.inspect_image(ref).get("Config") or {}).get("Labels") or {}
            except NotFound:
                labels = {}
        if labels.get(MOVE_LABEL) != move_id:
            raise InvalidInput(f"the snapshot held no image of move {move_id}: {text[:300]}", "source")
    except BaseException:
        _remove_new(client, before, move_id)
        raise
    return ref


def _remove_new(client: Any, before: set[str], move_id: str) -> None:
    """Images that appeared during a failed load and belong to no other move in progress."""
    try:
        with engine_errors("listing images"):
            images = client.api.images(all=True)
        for image in images:
            other = (image.get("Labels") or {}).get(MOVE_LABEL)
            if image["Id"] not in before and other in (None, move_id):
                remove_snapshot(client, image["Id"])
    except DockpoolError:
        pass  # the engine is gone: the sweep at the next start removes what it left


def remove_snapshot(client: Any, image_id: str) -> None:
    try:
        with engine_errors("removing the snapshot"):
            client.api.remove_image(image_id, force=True)
    except NotFound:
        pass


def remove_if_unused(client: Any, image_id: str) -> None:
    """After an instance is removed: its image, if it was a move's snapshot no container uses."""
    with engine_errors("reading the instance's image"):
        try:
            labels = (client.api.inspect_image(image_id).get("Config") or {}).get("Labels") or {}
        except NotFound:
            return
        used = any(c["ImageID"] == image_id for c in client.api.containers(all=True))
    if MOVE_LABEL in labels and not used:
        remove_snapshot(client, image_id)


def sweep(client: Any) -> list[str]:
    """Snapshot images no container uses: what a provider killed mid-move leaves (at start only:
    while the service runs, a move may hold a loaded snapshot it has not created from yet)."""
    with engine_errors("listing snapshots"):
        images = client.api.images(filters={"label": MOVE_LABEL})
        used = {c["ImageID"] for c in client.api.containers(all=True)}
    gone = [i["Id"] for i in images if i["Id"] not in used]
    for image_id in gone:
        remove_snapshot(client, image_id)
    return gone

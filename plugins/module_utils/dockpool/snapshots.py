"""Moving an instance between providers: its filesystem streamed out of one engine and into
another, never held whole in memory.

The stopped instance's whole filesystem, as ``docker export`` streams it (the image it ran
from with everything the client wrote, installed or removed over it), is what crosses; the
target imports it as one layer (``docker import``), with the image settings of its own copy
of the instance's image. (The writable layer alone would be laid over the target's own build
of the image, which differs file by file between providers: a package database written over
other packages' files. Nor is there a commit: the engine would write the client's data once
more before sending it, about a third of the move's time for data that does not compress.)
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


def exported(client: Any, container_id: str) -> Iterator[bytes]:
    """The (stopped) instance's filesystem as ``docker export`` streams it, a chunk at a time."""
    with engine_errors("streaming the instance's filesystem"):
        yield from client.api.export(container_id, chunk_size=CHUNK)


def _word(value: str) -> str:
    """A value as one quoted word of a Dockerfile instruction (the import's ``changes``)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def image_settings(config: dict[str, Any], move_id: str) -> tuple[list[str], dict[str, Any]]:
    """The import's changes that give the snapshot an image's settings (``config``: its inspect's
    Config) and the move's label; and the settings the imported image must then have."""
    labels = {**(config.get("Labels") or {}), MOVE_LABEL: move_id}
    wanted: dict[str, Any] = {
        "Entrypoint": config.get("Entrypoint"), "Cmd": config.get("Cmd"), "Env": config.get("Env") or [],
        "ExposedPorts": config.get("ExposedPorts") or {}, "Labels": labels,
        "User": config.get("User") or "", "WorkingDir": config.get("WorkingDir") or ""}
    changes = [f"{key.upper()} {json.dumps(wanted[key])}" for key in ("Entrypoint", "Cmd") if wanted[key]]
    changes += [f"ENV {_word(k)}={_word(v)}" for k, v in (e.split("=", 1) for e in wanted["Env"])]
    changes += [f"EXPOSE {port}" for port in wanted["ExposedPorts"]]
    changes += [f"LABEL {_word(k)}={_word(v)}" for k, v in labels.items()]
    changes += [f"{word} {wanted[key]}" for key, word in (("User", "USER"), ("WorkingDir", "WORKDIR")) if wanted[key]]
    return changes, wanted


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


def load(client: Any, chunks: Iterable[bytes], ref: str, move_id: str, config: dict[str, Any]) -> str:
    """Import a streamed filesystem (checked as it streams: image_archive.py) as the snapshot
    ``ref`` with the image settings ``config``; returns ``ref``. A cut or refused stream leaves no
    image (the engine keeps an import only whole); whatever a failed import still brought is removed."""
    with engine_errors("listing images"):
        before = {i["Id"] for i in client.api.images(all=True)}
    repository, tag = ref.rsplit(":", 1)
    changes, wanted = image_settings(config, move_id)
    try:
        with engine_errors("importing the instance's filesystem"):
            client.api.import_image(src=image_archive.checked(chunks), repository=repository, tag=tag,
                                    changes=changes, stream_src=True)
            got = client.api.inspect_image(ref).get("Config") or {}
        differs = sorted(k for k, v in wanted.items() if (got.get(k) or type(v)()) != v)
        if differs:
            raise InvalidInput(f"the imported snapshot's settings differ from the image's: {', '.join(differs)}", "source")
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

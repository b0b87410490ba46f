"""Instance images: P2PRC-style folders, their build, and the ports they declare.

A folder ``<name>/{Dockerfile, ports.json, description.txt}`` is validated,
then built with its ports and description recorded as image labels, so every
caller learns an image's ports from the image itself.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from .engine import engine_errors
from .errors import InvalidInput, NotFound
from .libraries import docker
from .validation import validate_image_ref

LABEL_NAME = "dockpool.image.name"
LABEL_PORTS = "dockpool.image.ports"
LABEL_DESCRIPTION = "dockpool.image.description"
LABEL_SOURCE_HASH = "dockpool.image.source-hash"
# Set by images whose entrypoint installs the client's key from this environment variable.
LABEL_KEY_ENV = "dockpool.image.authorized-key-env"
# Set by desktop images: the provider makes a VNC password per instance and passes it in this variable.
LABEL_VNC_ENV = "dockpool.image.vnc-password-env"
DEFAULT_PREFIX = "dockpool/"
REQUIRED_FILES = ("Dockerfile", "ports.json", "description.txt")
PROTOCOLS = ("tcp", "udp")
_MAX_DESCRIPTION = 2000
_MAX_PORTS = 32


@dataclass(frozen=True)
class ImagePort:
    """A port an image's service listens on, in the container."""

    name: str
    port: int
    protocol: str = "tcp"
    description: str = ""


@dataclass(frozen=True)
class ImageFolder:
    name: str
    path: str
    ports: tuple[ImagePort, ...]
    description: str


def _port_error(source: str, index: int, key: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{source}: Port[{index}].{key}: {problem}", f"Port[{index}].{key}", {"file": source})


def parse_ports_json(text: str, source: str = "ports.json") -> tuple[ImagePort, ...]:
    """Validate P2PRC's ``{"Port": [{"PortName", "InternalPort", "Type", ...}]}``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{source}: not valid JSON ({exc})", "Port", {"file": source}) from None
    if not isinstance(data, dict) or not isinstance(data.get("Port"), list):
        raise InvalidInput(f'{source}: expected an object with a "Port" list', "Port", {"file": source})
    if len(data["Port"]) > _MAX_PORTS:
        raise InvalidInput(f"{source}: at most {_MAX_PORTS} ports may be declared", "Port", {"file": source})
    ports: list[ImagePort] = []
    seen: set[tuple[int, str]] = set()
    for index, entry in enumerate(data["Port"]):
        if not isinstance(entry, dict):
            raise InvalidInput(f"{source}: Port[{index}] must be an object", f"Port[{index}]", {"file": source})
        name = entry.get("PortName")
        if not isinstance(name, str) or not name.strip() or len(name) > 64:
            raise _port_error(source, index, "PortName", "a non-empty name of at most 64 characters is required")
        port = entry.get("InternalPort")
        if isinstance(port, str) and port.isdigit():
            port = int(port)  # P2PRC files in the wild sometimes quote it
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise _port_error(source, index, "InternalPort", f"must be an integer from 1 to 65535, got {port!r}")
        protocol = entry.get("Type", "tcp")
        if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
            raise _port_error(source, index, "Type", f"must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        description = entry.get("Description", "")
        if not isinstance(description, str):
            raise _port_error(source, index, "Description", "must be a string")
        for optional, kind in (("ExternalPort", int), ("IsUsed", bool)):
            if optional in entry and entry[optional] is not None and not isinstance(entry[optional], kind):
                raise _port_error(source, index, optional, f"must be {kind.__name__} when given")
        key = (port, protocol.lower())
        if key in seen:
            raise _port_error(source, index, "InternalPort", f"{port}/{protocol.lower()} is declared twice")
        seen.add(key)
        ports.append(ImagePort(name.strip(), port, protocol.lower(), description.strip()))
    return tuple(ports)


def read_image_folder(path: str) -> ImageFolder:
    """Validate one image folder and return what it declares."""
    folder = Path(path)
    name = folder.name
    validate_image_ref(name, "image folder name")
    if "/" in name or ":" in name:
        raise InvalidInput(f"image folder name {name!r} must be a single lowercase word", "image")
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        raise InvalidInput(f"{folder}: missing {', '.join(missing)} (an image folder holds {', '.join(REQUIRED_FILES)})", "image")
    ports = parse_ports_json((folder / "ports.json").read_text(encoding="utf-8"), str(folder / "ports.json"))
    description = (folder / "description.txt").read_text(encoding="utf-8").strip()
    if len(description) > _MAX_DESCRIPTION:
        raise InvalidInput(f"{folder / 'description.txt'}: longer than {_MAX_DESCRIPTION} characters", "description")
    return ImageFolder(name=name, path=str(folder), ports=ports, description=description)


_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(\S*))?\s*$", re.IGNORECASE)
_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE)
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")


def base_reference(dockerfile: str, build_args: Optional[dict[str, str]] = None) -> Optional[str]:
    """The image the first FROM names, after the ARG defaults and build arguments before it."""
    values: dict[str, str] = {}
    for line in dockerfile.splitlines():
        arg, base = _ARG.match(line), _FROM.match(line)
        if arg:
            values[arg.group(1)] = (build_args or {}).get(arg.group(1), arg.group(2) or "")
        elif base:
            return _VARIABLE.sub(lambda m: values.get(m.group(1), ""), base.group(1)) or None
    return None


def base_image_id(client: Any, path: str, build_args: Optional[dict[str, str]] = None) -> str:
    """The local ID of the folder's base image ("absent" when not here): a new base means a rebuild."""
    reference = base_reference((Path(path) / "Dockerfile").read_text(encoding="utf-8"), build_args)
    if not reference or reference == "scratch":
        return "scratch"
    try:
        with engine_errors(f"reading base image {reference}"):
            return client.images.get(reference).id
    except NotFound:
        return "absent"


def folder_hash(path: str, build_args: Optional[dict[str, str]] = None, base_id: str = "") -> str:
    """A digest of every file (path, mode, content), the build arguments and the base
    image's ID, to rebuild exactly when one of them changed."""
    digest = hashlib.sha256(base_id.encode())
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        digest.update(f"{rel}\0{file.stat().st_mode & 0o777:o}\0".encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    digest.update(json.dumps(build_args or {}, sort_keys=True).encode())
    return digest.hexdigest()


def image_labels(folder: ImageFolder, source_hash: str) -> dict[str, str]:
    return {
        LABEL_NAME: folder.name,
        LABEL_PORTS: json.dumps([asdict(p) for p in folder.ports], separators=(",", ":")),
        LABEL_DESCRIPTION: folder.description,
        LABEL_SOURCE_HASH: source_hash,
    }


def ports_from_image(attrs: dict[str, Any]) -> tuple[ImagePort, ...]:
    """An image's ports from its labels, else from its EXPOSEd ports (22/tcp is SSH)."""
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    if LABEL_PORTS in labels:
        try:
            return tuple(ImagePort(**p) for p in json.loads(labels[LABEL_PORTS]))
        except (TypeError, ValueError):
            pass  # a hand-made label we cannot read: fall back to EXPOSE, as for foreign images
    ports = []
    for spec in sorted(config.get("ExposedPorts") or {}):
        number, _slash, protocol = spec.partition("/")
        if number.isdigit() and (protocol or "tcp") in PROTOCOLS:
            port = int(number)
            name = "SSH" if (port, protocol or "tcp") == (22, "tcp") else f"{port}/{protocol or 'tcp'}"
            ports.append(ImagePort(name, port, protocol or "tcp", ""))
    return tuple(ports)


def env_label(attrs: dict[str, Any], label: str) -> Optional[str]:
    """The environment variable an image names in ``label`` (LABEL_KEY_ENV, LABEL_VNC_ENV), if any."""
    value = ((attrs.get("Config") or {}).get("Labels") or {}).get(label)
    return value if value and value.replace("_", "").isalnum() else None


def key_env(attrs: dict[str, Any]) -> Optional[str]:
    """The variable through which the image takes the client's key, if it declares one."""
    return env_label(attrs, LABEL_KEY_ENV)


def image_tag(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}{name}:latest"


def resolve_image(client: Any, ref: str, prefix: str = DEFAULT_PREFIX) -> Any:
    """Find a local image: a dockpool folder name first, then the reference as given.

    Never pulls: no client request may make a provider download arbitrary images.
    """
    validate_image_ref(ref)
    candidates = [ref] if ("/" in ref or ":" in ref) else [image_tag(ref, prefix), ref]
    for candidate in candidates:
        try:
            with engine_errors(f"looking up image {ref!r}"):
                return client.images.get(candidate)
        except NotFound:
            continue
    available = [img["name"] for img in list_images(client, prefix)]
    raise NotFound(
        f"image: {ref!r} is not available on this provider; available: {', '.join(available) or 'none built yet'}",
        "image",
        {"available": available},
    )


def describe_image(image: Any) -> dict[str, Any]:
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    return {
        "name": labels.get(LABEL_NAME) or (image.tags[0] if image.tags else image.short_id),
        "id": image.id,
        "tags": image.tags,
        "description": labels.get(LABEL_DESCRIPTION, ""),
        "ports": [asdict(p) for p in ports_from_image(image.attrs)],
        "source_hash": labels.get(LABEL_SOURCE_HASH),
    }


def list_images(client: Any, prefix: str = DEFAULT_PREFIX) -> list[dict[str, Any]]:
    """The images dockpool built under ``prefix`` (``<prefix><name>:latest``), by name."""
    images = []
    with engine_errors("listing images"):
        found = client.images.list(filters={"label": LABEL_NAME})
    for image in found:
        described = describe_image(image)
        if image_tag(described["name"], prefix) in image.tags:
            images.append(described)
    return sorted(images, key=lambda i: i["name"])


def build_image(
    client: Any,
    path: str,
    prefix: str = DEFAULT_PREFIX,
    build_args: Optional[dict[str, str]] = None,
    check_mode: bool = False,
) -> dict[str, Any]:
    """Build a folder unless an image with the same source hash is already tagged.

    Returns {"changed", "image", "tag", "source_hash", "previous_hash"}; in check mode builds nothing.
    """
    folder = read_image_folder(path)
    source_hash = folder_hash(path, build_args, base_image_id(client, path, build_args))
    tag = image_tag(folder.name, prefix)
    try:
        with engine_errors(f"looking up image {tag}"):
            current = client.images.get(tag)
    except NotFound:
        current = None
    previous = describe_image(current)["source_hash"] if current is not None else None
    if previous == source_hash:
        return {"changed": False, "image": describe_image(current), "tag": tag, "source_hash": source_hash, "previous_hash": previous}
    if check_mode:
        return {"changed": True, "image": None, "tag": tag, "source_hash": source_hash, "previous_hash": previous}
    with engine_errors(f"building {tag}"):
        try:
            image, _build_log = client.images.build(
                path=os.fspath(path),
                tag=tag,
                labels=image_labels(folder, source_hash),
                buildargs=build_args or {},
                rm=True,
                forcerm=True,
                pull=False,
            )
        except docker.errors.BuildError as exc:  # the Dockerfile's fault, not the engine's
            tail = [line.get("stream", line.get("error", "")).strip() for line in exc.build_log][-15:]
            raise InvalidInput(f"building {tag} from {path} failed: {exc.msg}", "image", {"log": [t for t in tail if t]}) from exc
    return {"changed": True, "image": describe_image(image), "tag": tag, "source_hash": source_hash, "previous_hash": previous}

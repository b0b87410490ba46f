"""P2PRC's routes on port 8088, for existing clients: thin adapters over the same
services, answering P2PRC's shapes (plain text where P2PRC answered plain text)."""
from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import unquote

from bottle import Bottle, request, response

from dockpool.errors import InvalidInput
from dockpool.host_specs import to_p2prc_server_info
from dockpool.validation import validate_public_key

from .access import current_client
from .config import ApiConfig
from .responses import json_body, parse_json, read_stream, text_body, zeros
from .services import Services

MAX_FILENAME = 255
# What a P2PRC user runs instead of the RSA-1024 key `p2prc` makes on its first run: an ed25519 pair
# where P2PRC reads its keys (PublicKeyFile, PrivateKeyFile in $P2PRC/config.json), the old pair kept.
P2PRC_NEW_KEY = ('cd "$P2PRC" && mv p2prc.privateKey p2prc.privateKey.rsa1024 && mv p2prc.publicKey p2prc.publicKey.rsa1024'
                 ' && ssh-keygen -t ed25519 -N "" -C p2prc -q -f p2prc.privateKey && mv p2prc.privateKey.pub p2prc.publicKey')


def _bool(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false", ""):
        raise InvalidInput(f"{name}: expected true or false, got {value[:20]!r}", name)
    return value.lower() == "true"


def raw_query(name: str) -> str:
    """A query value percent-decoded but with '+' kept: P2PRC's client puts the standard base64
    of the key file in the URL unencoded, so its '+' is a '+', never a space (a client that
    encodes sends %2B, which decodes to the same)."""
    for part in request.environ.get("QUERY_STRING", "").split("&"):
        key, _, value = part.partition("=")
        if unquote(key) == name:
            return unquote(value)
    return ""


def _public_key(value: str) -> str:
    try:
        key = base64.b64decode(value, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # binascii.Error, non-ASCII text, bad UTF-8
        raise InvalidInput("PublicKey: must be the base64 of an OpenSSH public key line", "PublicKey") from None
    try:
        validate_public_key(key, "PublicKey")
    except InvalidInput as exc:
        if not (isinstance(exc.detail, dict) and "min_bits" in exc.detail):
            raise
        # A weak key stays refused; P2PRC's user is told what replaces the one `p2prc` made.
        raise InvalidInput(f"{exc.message} (p2prc makes RSA-1024 keys). Make an ed25519 key where P2PRC reads it "
                           f"($P2PRC/p2prc.publicKey and p2prc.privateKey, as its config.json names them), "
                           f"keeping the old one: {P2PRC_NEW_KEY}", "PublicKey", {**exc.detail, "run": P2PRC_NEW_KEY}) from None
    return key


def _p2prc_ports(view: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        "Port": [
            {
                "PortName": p["name"],
                "InternalPort": p["container_port"],
                "Type": p["protocol"],
                "ExternalPort": p["host_port"],
                "IsUsed": True,
                "Description": p["description"],
            }
            for p in view["ports"]
        ]
    }


def form_file(field: str):
    """A multipart file field; a malformed body is bad input, not a server error."""
    try:
        return request.files.get(field)
    except (ValueError, UnicodeError, IndexError) as exc:
        raise InvalidInput(f"{field}: the multipart body is malformed ({str(exc)[:100]})", field) from None


def add_p2prc_routes(app: Bottle, config: ApiConfig, services: Services) -> None:
    """P2PRC's routes: what a provider is and its transfers, its peer table, its containers."""
    _add_info_routes(app, config, services)
    _add_container_routes(app, config, services)


def _add_info_routes(app: Bottle, config: ApiConfig, services: Services) -> None:
    @app.get("/server_info", access="reader")
    def server_info():
        info = to_p2prc_server_info(services.specs())
        # Extra keys may follow P2PRC's; the key is what a peer checks a signed entry against.
        info["dockpool"] = {"provider": config.provider_name, "api": "/v1", "membership_key": services.peers.public_key}
        return json_body(info)

    @app.get("/50", access="reader")
    def fifty():
        response.content_type = "application/octet-stream"
        response.content_length = 50 * 1024 * 1024
        return zeros(50 * 1024 * 1024)

    @app.route("/upload", method=["GET", "POST"], access="reader")
    def upload():
        if request.content_length > config.max_upload_bytes:
            read_stream(config.max_upload_bytes)  # answers 413 with the bound
        upload_file = form_file("file")
        if upload_file is None:
            raise InvalidInput("file: send the file as the multipart field 'file'", "file")
        name = re.sub(r"[\x00-\x1f/\\]", "_", upload_file.raw_filename or "")[:MAX_FILENAME]
        upload_file.file.close()  # read by Bottle, counted by the client, discarded here
        return text_body(f"'{name}' uploaded!")

    @app.post("/IpTable", access="peer")
    def ip_table():
        if request.content_length > config.max_json_bytes:
            raise InvalidInput(f"the peer table exceeds {config.max_json_bytes} bytes", "json", {"max": config.max_json_bytes})
        part = form_file("json")
        if part is None:
            raise InvalidInput("json: send the table as the multipart file field 'json'", "json")
        raw = part.file.read(config.max_json_bytes + 1)
        if len(raw) > config.max_json_bytes:
            raise InvalidInput(f"the peer table exceeds {config.max_json_bytes} bytes", "json", {"max": config.max_json_bytes})
        return json_body(services.peers.merge_p2prc(parse_json(raw, "json")))

    @app.get("/ShowImages", access="reader")
    def show_images():
        return json_body({"DockerContainer": [{"DockerContainerName": i["name"], "ContainerDescription": i["description"]}
                                          for i in services.images()]})


def _create_request(config: ApiConfig) -> dict[str, Any]:
    """P2PRC's /startcontainer query as the API's create request."""
    query = request.query
    ports = query.get("ports", "0")
    if not ports.isdigit():
        raise InvalidInput(f"ports: a whole number of extra ports, got {ports[:20]!r}", "ports")
    base = query.get("BaseImage", "")
    if base and base not in config.base_images:
        raise InvalidInput(f"BaseImage: {base[:60]!r} is not allowed here; allowed: {', '.join(config.base_images) or 'none'}",
                           "BaseImage")
    name = query.get("ContainerName") or None
    return {
        "image": config.p2prc_image_aliases.get(name, name) if name else None,
        "extra_ports": int(ports),
        "gpu": _bool("GPU", query.get("GPU", "false")),
        "public_key": _public_key(raw_query("PublicKey")) if query.get("PublicKey") else None,
    }


def _add_container_routes(app: Bottle, config: ApiConfig, services: Services) -> None:
    @app.get("/startcontainer", access="p2prc")
    def start_container():
        body = _create_request(config)
        view = services.create(current_client(), body)
        return json_body({
            "SSHUsername": view["ssh"]["user"] if view["ssh"] else "root",
            "SSHPublicKey": body["public_key"],
            "ID": view["id"],
            "TagName": view["image"],
            "Ports": _p2prc_ports(view),
            "GPU": "true" if view["gpu"] else "false",
        })

    # P2PRC's client prints "Success" whatever the answer's status: a refusal says so in its text.
    @app.get("/RemoveContainer", access="p2prc", refusal="nothing was removed")
    def remove_container():
        who = current_client()
        ref = request.query.get("id", "")
        if not ref:
            raise InvalidInput("id: the container's ID is required", "id")
        services.remove(who, ref)
        return text_body("success")

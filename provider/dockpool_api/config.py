"""The service's settings file (rendered by the provider_api role), validated once at start."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import urlsplit

from dockpool.errors import InvalidInput
from dockpool.limits import Limits
from dockpool.metering import DEFAULT_LEDGER_FILE
from dockpool.networks import DEFAULT_DENY, NetworkRule
from dockpool.policy import DEFAULT_POLICY_FILE
from dockpool.settings_files import read_settings
from dockpool.usage import DEFAULT_USAGE_FILE
from dockpool.validation import validate_image_ref, validate_name

from .fleet import relays
from .fleet.relays import RelayPath
from .packages import parse_packages

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Client:
    name: str
    token_sha256: str
    admin: bool = False
    limits: tuple[tuple[str, Any], ...] = ()  # how this client's limits narrow the provider's (limits.Limits)
    package: str = ""  # the operator's package for this client (budgets.py): its limits and budgets


@dataclass(frozen=True)
class TrustedNetwork:
    """P2PRC clients in ``network`` create and remove instances without a token, as ``client``."""

    network: str
    client: Client


@dataclass(frozen=True)
class ApiConfig:
    listen: str = "127.0.0.1"
    port: int = 8088
    threads: int = 8
    connections_per_source: int = 32  # the plain listener's, per client address (plain_listener.py)
    header_timeout: float = 10.0  # seconds a request's header may take to arrive whole
    provider_name: str = "provider"
    jump_user: str = "iaas-client"
    jump_port: int = 22000
    clients: tuple[Client, ...] = ()
    # The operator's local credential (a root-only file the provider_api role makes): drains only, from this machine.
    operator_token_sha256: str = ""
    packages: dict[str, Any] = field(default_factory=dict)  # name -> {limits, budgets} (budgets.parse_packages)
    open_read_routes: bool = True
    images: tuple[str, ...] = ("debian-sshd",)
    base_images: tuple[str, ...] = ()
    # P2PRC's image names as offered images (image_aliases): what its stock client asks for by default
    p2prc_image_aliases: dict[str, str] = field(default_factory=dict)
    policy_file: str = DEFAULT_POLICY_FILE
    usage_file: str = DEFAULT_USAGE_FILE
    ledger_file: str = DEFAULT_LEDGER_FILE  # the usage ledger the watchdog writes (dockpool.metering); read here
    peers_file: str = "/var/lib/dockpool/peers.json"
    drain_file: str = "/var/lib/dockpool/drain.json"  # whether this provider is draining (fleet/drains.py)
    moves_file: str = "/var/lib/dockpool/moves.json"  # the moves under way, for a restart (fleet/journal.py)
    replicas_dir: str = "/var/lib/dockpool/replicas"  # replicas held for others, and this provider's own (fleet/replicas.py)
    replica_max_bytes: int = 20 * 1024**3  # what the replicas held here may take of the disk, at most
    replica_interval: float = 600.0  # seconds between refreshes of the replicas asked for (replica: true)
    replica_all: bool = False  # True: every instance here has a replica, asked for or not
    replica_refreshes_per_hour: int = 6  # refreshes a client may ask for of one instance in any hour
    replica_client_refreshes_per_hour: int = 30  # ... and of all her instances here together
    replica_client_share: float = 0.25  # of replica_max_bytes, what one client's replicas may take here
    peers_max: int = 256
    peer_rule: NetworkRule = field(default_factory=NetworkRule)
    peer_sources: tuple[str, ...] = ()  # networks whose P2PRC peers may write the peer table without a token
    p2prc_networks: tuple[TrustedNetwork, ...] = ()  # off by default: every P2PRC client sends a token
    fleet_port: int = 0  # the fleet's listener (mutual TLS between providers); 0: no fleet, this provider alone
    fleet_listen: str = ""  # its address; "": the same as listen
    fleet_cert: str = ""  # this provider's certificate from the fleet's CA (its common name is provider_name)
    fleet_key: str = ""
    fleet_cas: str = ""  # PEM bundle of the CAs whose providers are members (the fleet's own, and any joined)
    bootstrap_peers: tuple[str, ...] = ()  # https://address:fleet_port of other providers' fleet listeners
    relays: tuple[RelayPath, ...] = ()  # behind NAT: the relays this provider is reached through (docs/nat.md)
    moves_per_client: int = 2  # move grants one client may hold at once on this provider
    gossip_interval: float = 5.0  # seconds between exchange rounds
    gossip_fanout: int = 3  # peers exchanged with per round
    gossip_answers: int = 0  # exchanges answered per interval at most (others wait); 0: twice the fan-out
    peer_expiry: float = 60.0  # seconds a peer may stay silent before it leaves the table
    max_upload_bytes: int = 256 * 1024**2
    max_download_bytes: int = 50 * 1024**2
    max_json_bytes: int = 1024**2
    docker_host: Optional[str] = None
    tls_port: int = 0  # where the HTTPS front (nginx, on this machine) listens; 0: none
    plain_http_tokens: bool = True  # False: a request carrying a token over plain HTTP is refused
    metrics_token_sha256: str = ""  # the operator's scrape credential: /metrics with every client's series


def _clients(raw: Any, packages: dict[str, Any]) -> tuple[Client, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("clients: must be a list of {name, token_sha256, admin, package}", "clients")
    clients = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not _SHA256.match(str(item.get("token_sha256", ""))):
            raise InvalidInput(f"clients[{i}]: needs a name and the SHA-256 hex of its token", f"clients[{i}]")
        package = item.get("package") or ""
        if package and package not in packages:
            raise InvalidInput(f"clients[{i}].package: {package!r} is not a package of this provider (packages: "
                               f"{', '.join(sorted(packages)) or 'none defined'})", f"clients[{i}].package")
        clients.append(Client(validate_name(item.get("name"), f"clients[{i}].name"), item["token_sha256"],
                              bool(item.get("admin")), packages[package]["limits"] if package else (), package))
    if len({c.name for c in clients}) != len(clients):
        raise InvalidInput("clients: names must be unique", "clients")
    return tuple(clients)


def _trusted_networks(raw: Any, clients: tuple[Client, ...]) -> tuple[TrustedNetwork, ...]:
    if not isinstance(raw, list):
        raise InvalidInput("p2prc_networks: must be a list of {network, client, limits}", "p2prc_networks")
    out = []
    for i, item in enumerate(raw):
        where = f"p2prc_networks[{i}]"
        if not isinstance(item, dict) or set(item) - {"network", "client", "limits"} or "network" not in item:
            raise InvalidInput(f"{where}: needs a network and a client name (and may give limits)", where)
        try:
            network = str(ipaddress.ip_network(item["network"]))
        except (TypeError, ValueError):
            raise InvalidInput(f"{where}.network: {item['network']!r} is not a network such as 192.0.2.0/24",
                               f"{where}.network") from None
        name = validate_name(item.get("client"), f"{where}.client")
        if name in {c.name for c in clients}:
            raise InvalidInput(f"{where}.client: {name!r} is a token client's name; a trusted network's instances "
                               "belong to a client of its own", f"{where}.client")
        limits = tuple(sorted(Limits.parse(item.get("limits") or {}, f"{where}.limits").items()))
        out.append(TrustedNetwork(network, Client(name, "", False, limits)))
    return tuple(out)


def parse_peer_url(url: str) -> tuple[str, int]:
    """``https://address:port`` as given in ``bootstrap_peers`` (another provider's fleet listener)."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise InvalidInput(f"bootstrap_peers: {url!r} is not https://ADDRESS:PORT (a provider's fleet port, "
                           "mutual TLS)", "bootstrap_peers")
    return parts.hostname, parts.port or 8444


def _gossip(values: dict[str, Any]) -> None:
    """The exchange settings, each within a range that keeps the fleet converging and bounded."""
    for name, low, high in (("gossip_interval", 0.2, 3600), ("peer_expiry", 1.0, 86400)):
        value = values.get(name, ApiConfig.__dataclass_fields__[name].default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise InvalidInput(f"{name}: {value!r} is not a number of seconds from {low} to {high}", name)
        values[name] = float(value)
    if values["peer_expiry"] < 3 * values["gossip_interval"]:
        raise InvalidInput(f"peer_expiry: must be at least three gossip intervals ({3 * values['gossip_interval']:g} s), "
                           "or live peers expire between two exchanges", "peer_expiry")
    for name, low, high in (("gossip_fanout", 1, 16), ("gossip_answers", 0, 256)):
        value = values.get(name, ApiConfig.__dataclass_fields__[name].default)
        if type(value) is not int or not low <= value <= high:
            raise InvalidInput(f"{name}: {value!r} is not a whole number from {low} to {high}", name)
    values["gossip_answers"] = values.get("gossip_answers") or 2 * values.get("gossip_fanout", 3)
    for url in values.get("bootstrap_peers", ()):
        parse_peer_url(url)


def _fleet(values: dict[str, Any]) -> None:
    """A fleet listener needs its certificate, key and CAs; without one the provider is alone."""
    port = values.get("fleet_port", 0)
    if type(port) is not int or not 0 <= port <= 65535:
        raise InvalidInput(f"fleet_port: {port!r} is not a port (1-65535, or 0 for no fleet)", "fleet_port")
    files = [name for name in ("fleet_cert", "fleet_key", "fleet_cas") if not values.get(name)]
    if port and files:
        raise InvalidInput(f"{files[0]}: a fleet listener (fleet_port {port}) needs fleet_cert, fleet_key and fleet_cas",
                           files[0])
    if not port and values.get("bootstrap_peers"):
        raise InvalidInput("bootstrap_peers: a provider without a fleet listener (fleet_port 0) has no peers to "
                           "bootstrap from", "bootstrap_peers")
    if values.get("fleet_listen"):
        ipaddress.ip_address(values["fleet_listen"])
    moves = values.get("moves_per_client", 2)
    if type(moves) is not int or not 1 <= moves <= 64:
        raise InvalidInput(f"moves_per_client: {moves!r} is not a whole number from 1 to 64", "moves_per_client")


def _replicas(values: dict[str, Any]) -> None:
    interval = values.get("replica_interval", ApiConfig.replica_interval)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 1 <= interval <= 7 * 86400:
        raise InvalidInput(f"replica_interval: {interval!r} is not a number of seconds from 1 to 604800 (a week)",
                           "replica_interval")
    values["replica_interval"] = float(interval)
    room = values.get("replica_max_bytes", ApiConfig.replica_max_bytes)
    if type(room) is not int or room < 0:
        raise InvalidInput(f"replica_max_bytes: {room!r} is not a whole number of bytes (0 holds no replica)",
                           "replica_max_bytes")
    if type(values.get("replica_all", False)) is not bool:
        raise InvalidInput(f"replica_all: {values['replica_all']!r} is not true or false", "replica_all")
    for name in ("replica_refreshes_per_hour", "replica_client_refreshes_per_hour"):
        count = values.get(name, ApiConfig.__dataclass_fields__[name].default)
        if type(count) is not int or not 1 <= count <= 3600:
            raise InvalidInput(f"{name}: {count!r} is not a whole number from 1 to 3600", name)
    share = values.get("replica_client_share", ApiConfig.replica_client_share)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise InvalidInput(f"replica_client_share: {share!r} is not a fraction of replica_max_bytes above 0 and at "
                           "most 1 (1: no client's share is smaller than the whole)", "replica_client_share")
    values["replica_client_share"] = float(share)


def _listener(values: dict[str, Any]) -> None:
    per_source = values.get("connections_per_source", ApiConfig.connections_per_source)
    if type(per_source) is not int or not 1 <= per_source <= 1000:
        raise InvalidInput(f"connections_per_source: {per_source!r} is not a whole number from 1 to 1000",
                           "connections_per_source")
    header = values.get("header_timeout", ApiConfig.header_timeout)
    if isinstance(header, bool) or not isinstance(header, (int, float)) or not 1 <= header <= 300:
        raise InvalidInput(f"header_timeout: {header!r} is not a number of seconds from 1 to 300", "header_timeout")
    values["header_timeout"] = float(header)


# P2PRC's client asks for its own default image by this name; it is the provider's default image
# (the first of ``images``) unless the operator maps it elsewhere, or to "" to refuse it.
P2PRC_DEFAULT_IMAGE = "docker-ubuntu-sshd"


def _image_aliases(values: dict[str, Any]) -> None:
    images = values.get("images", ApiConfig.__dataclass_fields__["images"].default)
    given = values.get("p2prc_image_aliases", {})
    if not isinstance(given, dict):
        raise InvalidInput("p2prc_image_aliases: must map P2PRC image names to offered images", "p2prc_image_aliases")
    # P2PRC's default name leads to the first image, unless the operator offers an image of that name.
    default = {P2PRC_DEFAULT_IMAGE: images[0]} if images and P2PRC_DEFAULT_IMAGE not in images else {}
    aliases = {**default, **given}
    for name, image in aliases.items():
        where = f"p2prc_image_aliases.{name}"
        validate_image_ref(name, where)
        if image != "" and image not in images:
            raise InvalidInput(f"{where}: {image!r} is not one of the offered images ({', '.join(images)}); "
                               'name one, or "" to refuse the name', where)
        if name in images:
            raise InvalidInput(f"{where}: {name!r} is an offered image itself; an alias would hide it", where)
    values["p2prc_image_aliases"] = {name: image for name, image in aliases.items() if image}


def config_from_dict(data: dict[str, Any]) -> ApiConfig:
    values = dict(data)
    known = set(ApiConfig.__dataclass_fields__) - {"peer_rule"} | {"peer_networks", "peer_deny_networks"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InvalidInput(f"unknown API settings: {', '.join(unknown)}", unknown[0])
    values["packages"] = parse_packages(values.get("packages", {}))
    if "clients" in values:
        values["clients"] = _clients(values["clients"], values["packages"])
    if "p2prc_networks" in values:
        values["p2prc_networks"] = _trusted_networks(values["p2prc_networks"], values.get("clients", ()))
    for key in ("images", "base_images"):
        if key in values:
            values[key] = tuple(validate_image_ref(v, key) for v in values[key])
    _image_aliases(values)
    for key in ("bootstrap_peers", "peer_sources"):
        if key in values:
            values[key] = tuple(values[key])
    if values.get("relays") == []:
        values["relays"] = ()  # not behind NAT (what the role writes for a public provider)
    elif "relays" in values:
        values["relays"] = relays.parse(values["relays"], "relays")
    allow = tuple(values.pop("peer_networks", ("0.0.0.0/0", "::/0")))
    deny = tuple(values.pop("peer_deny_networks", DEFAULT_DENY))
    try:
        for net in allow + deny + values.get("peer_sources", ()):
            ipaddress.ip_network(net)
        ipaddress.ip_address(values.get("listen", "127.0.0.1"))
    except ValueError as exc:
        raise InvalidInput(f"API settings: {exc}", "peer_networks") from None
    values["peer_rule"] = NetworkRule(allow, deny)
    _gossip(values)
    _replicas(values)
    _listener(values)
    try:
        _fleet(values)
    except ValueError as exc:
        raise InvalidInput(f"fleet_listen: {exc}", "fleet_listen") from None
    tls_port = values.get("tls_port", 0)
    if type(tls_port) is not int or not (tls_port == 0 or 1 <= tls_port <= 65535):
        raise InvalidInput(f"tls_port: {tls_port!r} is not a port (1-65535, or 0 for no HTTPS front)", "tls_port")
    if values.get("plain_http_tokens") is False and not tls_port:
        raise InvalidInput("plain_http_tokens: false needs a tls_port, where clients can send their tokens instead",
                           "plain_http_tokens")
    validate_name(values.get("provider_name", "provider"), "provider_name")
    _optional_sha256(values, "operator_token_sha256", "the operator's local credential (drains, from this machine)")
    _optional_sha256(values, "metrics_token_sha256", "the operator's scrape credential for /metrics")
    return ApiConfig(**values)


def _optional_sha256(values: dict[str, Any], key: str, what: str) -> None:
    digest = values.get(key, "")
    if digest and not (isinstance(digest, str) and _SHA256.match(digest)):
        raise InvalidInput(f"{key}: the SHA-256 hex of {what}, or empty for none", key)


def check_narrowing(config: ApiConfig, limits: Limits) -> None:
    """Every client's limits narrow the provider's ``limits`` (provider.json), never widen them."""
    for i, network in enumerate(config.p2prc_networks):
        limits.narrowed(dict(network.client.limits), f"p2prc_networks[{i}].limits")
    for name, package in config.packages.items():
        limits.narrowed(dict(package["limits"]), f"packages.{name}.limits")


def load_config(path: str) -> ApiConfig:
    return config_from_dict(read_settings(path, "the API settings", "config"))

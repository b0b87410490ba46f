"""The OpenAPI 3.0.3 description of every route, served at /openapi.json. It follows 3.0's rules
(``nullable: true``, never 3.1's type lists); the suite checks it with openapi-spec-validator.

Paths, path parameters and security come from the app's routes themselves (each rule, method and
``access=``); what each route does and answers is its entry in OPERATIONS, keyed by the same
method and rule, which the app checks when it is built (tests/unit/test_openapi.py: no drift)."""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional

from bottle import Route as BottleRoute

from dockpool.policy import RUNTIMES
from dockpool.request_options import json_schema
from dockpool.validation import ID_PATTERN, NAME_PATTERN

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}, "detail": {}},
}
_PORT = {
    "type": "object",
    "required": ["name", "container_port", "host_port", "protocol", "description"],
    "properties": {
        "name": {"type": "string"},
        "container_port": {"type": "integer"},
        "host_port": {"type": "integer"},
        "protocol": {"type": "string", "enum": ["tcp", "udp"]},
        "description": {"type": "string"},
    },
}
_INSTANCE = {
    "type": "object",
    "required": ["id", "name", "owner", "image", "state", "ssh", "ports", "limits"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "owner": {"type": "string"},
        "image": {"type": "string"},
        "state": {"type": "string"},
        "status": {"type": "string"},
        "created": {"type": "string"},
        "gpu": {"type": "boolean"},
        "runtime": {"type": "string", "enum": list(RUNTIMES),
                    "description": "runc: the provider's kernel; runsc: gVisor, a kernel in user space"},
        "ssh": {
            "type": "object",
            "nullable": True,
            "properties": {
                "user": {"type": "string"},
                "host": {"type": "string"},
                "port": {"type": "integer"},
                "command": {"type": "string"},
                "key_fingerprint": {"type": "string", "nullable": True,
                                    "description": "the SHA256 fingerprint of the key that logs in, as ssh-keygen -l prints it"},
                "jump_command": {"type": "string"},
                "jump": {
                    "type": "object",
                    "description": "the provider's jump account, for ProxyJump",
                    "properties": {"user": {"type": "string"}, "host": {"type": "string"}, "port": {"type": "integer"}},
                },
                "target_host": {"type": "string", "description": "the instance's address as seen from the jump host"},
            },
        },
        "desktop": {
            "type": "object",
            "nullable": True,
            "description": "desktop images only; vnc_password appears once, in the answer to the creation",
            "properties": {
                "novnc_url": {"type": "string"},
                "vnc_address": {"type": "string", "nullable": True},
                "vnc_password": {"type": "string"},
            },
        },
        "ports": {"type": "array", "items": {"$ref": "#/components/schemas/Port"}},
        "limits": {"type": "object"},
        "disk_usage": {"type": "object", "nullable": True},
    },
}
_CREATE = json_schema()  # the create request as spec.py declares it
# Peer entries as the service accepts them (P2PRC writes ports as text; NAT and ProxyServer are
# booleans, or "True"/"False" in P2PRC's older tables; fields it may add are ignored, as Go does).
_PORT_NUMBER = "^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
_PORT_VALUE = {"anyOf": [{"type": "string", "pattern": _PORT_NUMBER}, {"type": "integer", "minimum": 1, "maximum": 65535}]}
_OPTIONAL_PORT = {"anyOf": [{"type": "string", "pattern": f"^$|{_PORT_NUMBER}"}, {"type": "integer", "minimum": 1, "maximum": 65535}]}
_TEXT = {"type": "string", "pattern": "^[^\\x00-\\x1f]*$"}
_COUNT = {"type": "number", "minimum": 0, "maximum": 1e18}
_FLAG = {"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["True", "False", "true", "false", ""]}],
         "description": "answered as a boolean"}
_PEER = {
    "type": "object",
    "additionalProperties": True,
    "required": ["ServerPort"],
    "anyOf": [{"required": ["IPV4"], "properties": {"IPV4": {"minLength": 7}}},
              {"required": ["IPV6"], "properties": {"IPV6": {"minLength": 2}}}],
    "properties": {
        "Name": {**_TEXT, "maxLength": 64},
        "MachineUsername": {**_TEXT, "maxLength": 64},
        "IPV4": {"type": "string", "anyOf": [{"format": "ipv4"}, {"maxLength": 0}]},
        "IPV6": {"type": "string", "anyOf": [{"format": "ipv6"}, {"maxLength": 0}]},
        "Latency": {"type": "number", "minimum": 0, "maximum": 2**63 - 1,
                    "description": "a Go time.Duration (ns); answered whole"},
        "Download": _COUNT,
        "Upload": _COUNT,
        "ServerPort": _PORT_VALUE,
        "UDPServerPort": _OPTIONAL_PORT,
        "BareMetalSSHPort": _OPTIONAL_PORT,
        "NAT": _FLAG,
        "EscapeImplementation": {**_TEXT, "maxLength": 32},
        "ProxyServer": _FLAG,
        "UnSafeMode": {"type": "boolean"},
        "PublicKey": {"type": "string", "maxLength": 16384},
        "CustomInformation": {**_TEXT, "maxLength": 1024, "nullable": True},
        "dockpool": {"type": "object", "additionalProperties": False,
                     "required": ["key", "version", "signature", "age", "fleet_port"],
                     "description": "a dockpool provider's signed membership record (not sent on /IpTable)",
                     "properties": {"key": {"type": "string", "minLength": 44, "maxLength": 44},
                                    "version": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                                    "signature": {"type": "string", "minLength": 88, "maxLength": 88},
                                    "age": {"type": "number", "minimum": 0, "maximum": 1e9},
                                    "fleet_port": {"type": "integer", "minimum": 1, "maximum": 65535}}},
    },
}
_MEMBER = {"type": "object", "properties": {
    "name": {"type": "string"}, "address": {"type": "string"}, "port": {"type": "integer"},
    "heard_seconds_ago": {"type": "number"}, "answers": {"type": "boolean", "nullable": True}, "signed": {"type": "boolean"},
    "tier": {"type": "string", "enum": ["member", "p2prc"]}}}
_FLEET = {"type": "object", "properties": {
    "provider": {"type": "string"}, "fleet_port": {"type": "integer"}, "round": {"type": "integer"},
    "interval": {"type": "number"},
    "fanout": {"type": "integer"}, "expiry": {"type": "number"}, "bytes_sent_last_round": {"type": "integer"},
    "members": {"type": "array", "items": _MEMBER}}}
_P2PRC_TRUST = ("A client token, or none from a network the operator trusts (p2prc_networks), as that network's client. "
                "PublicKey is percent-decoded only: a '+' in it stays a '+', as P2PRC's client sends it unencoded.")
_TABLE = {"type": "object", "required": ["ip_address"], "additionalProperties": True,
          "properties": {"ip_address": {"type": "array", "maxItems": 256, "items": {"$ref": "#/components/schemas/Peer"}}}}


def _json(schema: Any, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*codes: int) -> dict:
    text = {400: "bad input", 401: "missing or wrong token",
            402: "a budget of your package is spent until it resets", 404: "not found", 409: "conflict or no capacity",
            403: "not yours to read", 413: "body too large", 429: "too many failed logins",
            503: "Docker engine unavailable, or peer checks busy"}
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _op(summary: str, responses: dict, **extra: Any) -> dict:
    """What a route does and answers; its path, path parameters and security come from the route."""
    return {"summary": summary, "responses": responses, **extra}


def _body(schema: Any, media: str = "application/json", required: bool = True) -> dict:
    return {"required": required, "content": {media: {"schema": schema}}}


_OBJECT = {"type": "object"}
_BINARY = {"type": "string", "format": "binary"}
_TEXT_ANSWER = {"type": "string"}
# An instance's name or its id, as instances.py resolves a reference.
_REF = {"type": "string", "pattern": f"{NAME_PATTERN}|{ID_PATTERN}"}
_NAME = {"type": "string", "pattern": NAME_PATTERN}


def _path_parameter(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


# Each path parameter by the name the routes give it (``<ref>`` in a rule is ``{ref}`` here). A route
# whose parameter of that name means something else gives its own in its entry's ``parameters``.
PATH_PARAMETERS = {
    "ref": _path_parameter("ref", _REF, "instance id or name"),
    "move_id": _path_parameter("move_id", {"type": "string"}, "a move's id (POST /v1/moves gave it)"),
    "export_id": _path_parameter("export_id", {"type": "string"}, "the id of a move's export of the instance"),
    "name": _path_parameter("name", _NAME, "the instance's name"),
    "source": _path_parameter("source", _NAME, "the provider the instance was on"),
}
_OWNER_PARAM = {"name": "X-Dockpool-Owner", "in": "header", "required": False,
                "schema": {"type": "string", "pattern": NAME_PATTERN}, "description": "the instance's owner"}
_USAGE_PARAMS = [
    {"name": "client", "in": "query", "required": False, "schema": {"type": "string", "pattern": NAME_PATTERN},
     "description": "an administrator's filter: this client's instances"},
    *({"name": edge, "in": "query", "required": False,
       "schema": {"type": "integer", "minimum": 0, "maximum": 253402300799},
       "description": f"{edge} when, in whole seconds since the epoch"}
      for edge in ("since", "until")),
    {"name": "format", "in": "query", "required": False, "schema": {"type": "string", "enum": ["json", "csv"]}},
]

# What a route that takes a token and names an instance may answer besides success.
_SECURED = (400, 401, 404, 429, 503)
_DRAIN = {"type": "object", "required": ["draining", "since"],
          "properties": {"draining": {"type": "boolean"}, "since": {"type": "string", "nullable": True}}}
# The access rules (access.py) under which the caller sends a bearer token: their operations
# carry the bearer security requirement. "metrics" takes one optionally; "fleet" a certificate.
TOKEN_ACCESS = ("client", "admin", "operator", "peer", "p2prc", "grant")
Route = tuple[str, str]  # (method, rule), as the route declares them


def _service_operations() -> dict[Route, dict]:
    """The provider's own routes: status, health, this document, metrics, what it offers, draining."""
    return {
        ("GET", "/"): _op("The status page: specs, capacity, peers, and your instances with a token (#token=... in a "
                          "browser)", {"200": {"description": "HTML", "content": {"text/html": {"schema": _TEXT_ANSWER}}},
                                       **_errors(401, 429, 503)}),
        ("GET", "/healthz"): _op("Is the Docker engine reachable?", {"200": _json(_OBJECT), **_errors(401, 429, 503)}),
        ("GET", "/openapi.json"): _op("This document", {"200": _json(_OBJECT)}),
        ("GET", "/metrics"): _op(
            "Prometheus metrics",
            {"200": {"description": "text format", "content": {"text/plain": {"schema": _TEXT_ANSWER}}},
             **_errors(401, 429)},
            description="Without a token, or with an ordinary client's, no series names a client. With the operator's "
                        "scrape credential or an admin's token, also each client's usage and each replica's."),
        ("GET", "/v1/specs"): _op("The provider's hardware", {"200": _json(_OBJECT), **_errors(401, 429)}),
        ("GET", "/v1/images"): _op("Images offered", {"200": _json({"type": "object", "required": ["images"],
                                                                     "properties": {"images": {"type": "array"}}}),
                                                       **_errors(401, 429, 503)}),
        ("GET", "/v1/drain"): _op("Is this provider draining (taking no new instance)?",
                                  {"200": _json(_DRAIN), **_errors(401, 429)}),
        ("PUT", "/v1/drain"): _op(
            "Start or end draining (an admin, or the operator's local credential from the provider itself): while it "
            "lasts, creations and moves in answer 409", {"200": _json(_DRAIN), **_errors(400, 401, 429)},
            requestBody=_body({"type": "object", "required": ["draining"], "additionalProperties": False,
                               "properties": {"draining": {"type": "boolean"}}})),
        ("POST", "/v1/drain/moves"): _op(
            "Move every instance to other members of the fleet that take it (as PUT /v1/drain, while draining); each moved "
            "one with where it went and how long its client was cut off, each that fits nowhere with the reasons",
            {"200": _json({"type": "object", "required": ["moved", "stayed"], "properties": {
                "moved": {"type": "array"}, "stayed": {"type": "array"}}}), **_errors(401, 409, 429, 503)}),
        ("GET", "/v1/speedtest/download"): _op("Download N zero bytes", {
            "200": {"description": "bytes", "content": {"application/octet-stream": {"schema": _BINARY}}},
            **_errors(400, 401, 429)}, parameters=[{"name": "bytes", "in": "query", "required": False,
                                                    "schema": {"type": "integer", "minimum": 1, "maximum": 52428800}}]),
        ("POST", "/v1/speedtest/upload"): _op("Upload bytes, read and discarded", {
            "200": _json({"type": "object", "required": ["bytes", "seconds"],
                          "properties": {"bytes": {"type": "integer"}, "seconds": {"type": "number"}}}),
            **_errors(401, 413, 429)}, requestBody=_body(_BINARY, "application/octet-stream", required=False)),
    }


def _instance_operations() -> dict[Route, dict]:
    """A client's instances and what they used."""
    instances = {"type": "object", "required": ["instances"],
                 "properties": {"instances": {"type": "array", "items": _ref("Instance")}}}
    move = {"type": "object", "required": ["target", "move", "grant"], "additionalProperties": False,
            "properties": {"target": {"type": "string"}, "move": {"type": "string"}, "grant": {"type": "string"}}}
    return {
        ("GET", "/v1/instances"): _op("Your instances (all, for an admin)", {"200": _json(instances),
                                                                             **_errors(401, 429, 503)}),
        ("POST", "/v1/instances"): _op("Create an instance", {"201": _json(_ref("Instance"), "created"),
                                                              **_errors(400, 401, 402, 404, 409, 413, 429, 503)},
                                       requestBody=_body(_CREATE)),
        ("GET", "/v1/instances/<ref>"): _op("One of your instances", {"200": _json(_ref("Instance")), **_errors(*_SECURED)}),
        ("DELETE", "/v1/instances/<ref>"): _op("Remove an instance", {"200": _json(_OBJECT), **_errors(*_SECURED)}),
        ("POST", "/v1/instances/<ref>/stop"): _op("Stop and keep an instance", {"200": _json(_ref("Instance")),
                                                                                **_errors(*_SECURED)}),
        ("POST", "/v1/instances/<ref>/start"): _op("Start a stopped instance", {"200": _json(_ref("Instance")),
                                                                                **_errors(*_SECURED, 402)}),
        ("POST", "/v1/instances/<ref>/move"): _op(
            "Move your instance to another provider of this one's fleet, with the move and grant that provider gave "
            "(POST /v1/moves there): stopped, committed, streamed there, removed here once it answers SSH there",
            {"200": _json(_OBJECT), **_errors(400, 401, 404, 409, 413, 429, 503),
             "502": _json(_ref("Error"), "the target refused or failed; the instance is where it was, running again")},
            requestBody=_body(move)),
        ("POST", "/v1/instances/<ref>/replicate"): _op(
            "Refresh your instance's replica on another member of the fleet now: frozen while its filesystem is read, "
            "then what changed since the last refresh is shipped (the first time, all of it). At most "
            "replica_refreshes_per_hour of one instance and replica_client_refreshes_per_hour of all yours (429 with "
            "Retry-After naming the limit); 402 while your package's budget is spent; what it cost this provider (its "
            "CPU time, the bytes shipped as egress) is charged to your usage; 409 when no member has room (each "
            "holder keeps a client to replica_client_share of what it holds)",
            {"200": _json(_OBJECT), **_errors(*_SECURED, 402, 409)}),
        ("GET", "/v1/instances/<ref>/replicas"): _op(
            "Your instance's replica: its holder, whether the holder is live, its age and the last refresh's cost",
            {"200": _json(_OBJECT), **_errors(*_SECURED)}),
        ("GET", "/v1/usage"): _op(
            "What your instances used here over a time range (from the start of this month to now unless asked), "
            "per instance and in total; an administrator reads every client's, or one's",
            {"200": {"description": "OK", "content": {"application/json": {"schema": _OBJECT},
                                                      "text/csv": {"schema": _TEXT_ANSWER}}},
             **_errors(400, 401, 403, 429)}, parameters=_USAGE_PARAMS),
    }


def _move_operations() -> dict[Route, dict]:
    """Moves: a client's grant, then the pull and export between providers."""
    offer = {"type": "object", "required": ["client", "request", "start"], "additionalProperties": False,
             "properties": {"client": {"type": "string"}, "request": _CREATE, "start": {"type": "boolean"}}}
    return {
        ("POST", "/v1/moves"): _op("Would an instance fit here? A grant to move it in (single use, 10 minutes)",
                                   {"201": _json(_OBJECT, "granted"), **_errors(400, 401, 404, 409, 413, 429, 503)},
                                   requestBody=_body(_CREATE)),
        ("GET", "/v1/moves/<move_id>"): _op("A move's progress here: its state and the bytes received",
                                            {"200": _json(_OBJECT), **_errors(401, 404, 429)}),
        ("DELETE", "/v1/moves/<move_id>"): _op("Give back a grant you will not use (a move under way cannot be)",
                                               {"200": _json(_OBJECT), **_errors(401, 404, 409, 429)}),
        ("POST", "/v1/moves/<move_id>/pull"): _op(
            "On the fleet's listener only (mutual TLS), from the source the grant names: fetch the snapshot, check and "
            "load it, create the instance", {"201": _json(_ref("Instance")), **_errors(400, 401, 404, 409, 413, 429, 503),
                                             "502": _json(_ref("Error"), "the source's snapshot could not be fetched")},
            requestBody=_body(_OBJECT)),
        ("GET", "/v1/exports/<export_id>"): _op(
            "On the fleet's listener only (mutual TLS), from the target the secret names: the stopped instance's "
            "filesystem as docker export streams it",
            {"200": {"description": "a tar archive", "content": {"application/x-tar": {"schema": _BINARY}}},
             **_errors(401, 409, 429, 503)}),
        ("POST", "/v1/fleet/offers"): _op(
            "On the fleet's listener only (mutual TLS), from a member draining: a move grant for its client's "
            "instance, as POST /v1/moves gives the client",
            {"201": _json(_OBJECT, "granted"), **_errors(400, 401, 404, 409, 413, 429, 503)}, requestBody=_body(offer)),
        ("GET", "/v1/fleet/moves/<export_id>"): _op(
            "On the fleet's listener only (mutual TLS), from a move's source that lost the answer or was "
            "restarted: the instance its export became here ({state: done, name}), or {state: moving}; 404 "
            "when nothing here holds it", {"200": _json(_OBJECT), **_errors(401, 404, 429)}),
    }


def _replica_operations() -> dict[Route, dict]:
    """Replicas: those this provider holds for other members, and a client's restore from one."""
    return {
        ("PUT", "/v1/fleet/replicas/<name>"): _op(
            "On the fleet's listener only (mutual TLS): a refresh of the calling member's replica of its instance, a "
            "tar with Content-Length, X-Dockpool-Refresh and X-Dockpool-Parent (empty: a full copy); 409 when the "
            "chain here does not end with the parent, 507 when it does not fit",
            {"200": _json(_OBJECT), **_errors(400, 401, 409, 429), "507": _json(_ref("Error"), "no room")},
            requestBody=_body(_BINARY, "application/octet-stream")),
        ("GET", "/v1/fleet/replicas/<name>"): _op(
            "On the fleet's listener only: the calling member's replica held here, and the room for a refresh of it "
            "(within the owner's share, when she is named)", {"200": _json(_OBJECT), **_errors(400, 401, 404, 429)},
            parameters=[_OWNER_PARAM]),
        ("DELETE", "/v1/fleet/replicas/<name>"): _op("On the fleet's listener only: drop the calling member's replica",
                                                     {"200": _json(_OBJECT), **_errors(401, 429)}),
        ("GET", "/v1/replicas"): _op(
            "The replicas held here of your instances on other providers ({replicas: [{provider, instance, refreshed, "
            "bytes, restored}]}); an administrator sees every one", {"200": _json(_OBJECT), **_errors(401, 429)}),
        ("POST", "/v1/replicas/<source>/<name>/restore"): _op(
            "Start your instance here from its last replica, with its name, key and limits, once its provider has "
            "expired from the fleet (409 while it is a live member, or when restored already; the same admission "
            "as a create)", {"201": _json(_ref("Instance"), "restored"), **_errors(*_SECURED)}),
    }


def _fleet_operations() -> dict[Route, dict]:
    """The peer table and the fleet's exchanges."""
    fleet_only = "On the fleet's listener only (mutual TLS): "
    return {
        ("GET", "/v1/peers"): _op("The peer table", {"200": _json(_ref("PeerTable")), **_errors(401, 429)}),
        ("POST", "/v1/peers"): _op(
            "Post P2PRC peers (kept in P2PRC's tier if they answer, never members of the fleet): a client's token, or "
            "a P2PRC peer in a network the operator trusts; answers P2PRC's table",
            {"200": _json(_ref("PeerTable")), **_errors(400, 401, 413, 429, 503)}, requestBody=_body(_ref("PeerTable"))),
        ("DELETE", "/v1/peers/<ref>"): _op(
            "Remove a peer table entry by name or address (administrators)", {"200": _json(_OBJECT),
                                                                              **_errors(401, 404, 429)},
            parameters=[_path_parameter("ref", {"type": "string"}, "a peer's name or address")]),
        ("GET", "/v1/fleet"): _op("This provider's view of the fleet: its exchange rounds and the live peers, each with "
                                  "its tier and when it was last heard from", {"200": _json(_FLEET), **_errors(401, 429)}),
        ("POST", "/v1/fleet/spend"): _op(fleet_only + "the fleet's spend counters, each set signed by its provider "
                                         "({hash} or {digest, sets}); refused here",
                                         {"200": _json(_OBJECT), **_errors(400, 401, 413, 429)}, requestBody=_body(_OBJECT)),
        ("POST", "/v1/fleet/gossip"): _op(fleet_only + "one step of another member's exchange (a summary first, then "
                                          "only what differs); refused here",
                                          {"200": _json(_OBJECT), **_errors(400, 401, 413, 429, 503)},
                                          requestBody=_body(_OBJECT)),
        ("POST", "/v1/fleet/probe"): _op(fleet_only + "probe the member {name} for another that could not reach it; "
                                         "answers {ack}; refused here", {"200": _json(_OBJECT), **_errors(400, 401, 413, 429)},
                                         requestBody=_body(_OBJECT)),
        ("GET", "/v1/fleet/identity"): _op(fleet_only + "this provider's name and membership key; refused here",
                                           {"200": _json(_OBJECT), **_errors(401, 429)}),
    }


def _p2prc_operations() -> dict[Route, dict]:
    """P2PRC's routes, kept for its clients."""
    upload = _body({"type": "object", "required": ["file"], "properties": {"file": _BINARY}}, "multipart/form-data")
    table_part = {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["json"], "properties": {"json": _ref("PeerTable")}},
        "encoding": {"json": {"contentType": "application/json"}}}}}
    uploaded = {"200": {"description": "'<name>' uploaded!", "content": {"text/plain": {"schema": _TEXT_ANSWER}}},
                **_errors(400, 401, 413, 429)}
    return {
        ("GET", "/server_info"): _op("P2PRC: the provider's specs", {"200": _json(_OBJECT), **_errors(401, 429)}),
        ("GET", "/50"): _op("P2PRC: a 50 MiB body", {"200": {"description": "bytes", "content": {
            "application/octet-stream": {"schema": _BINARY}}}, **_errors(401, 429)}),
        ("POST", "/upload"): _op("P2PRC: upload a file, read and discarded", uploaded, requestBody=upload),
        ("GET", "/upload"): _op("P2PRC: the same, for clients that send the form with GET", uploaded),
        ("POST", "/IpTable"): _op("P2PRC: merge a peer table (who may: as POST /v1/peers)",
                                  {"200": _json(_ref("PeerTable")), **_errors(400, 401, 413, 429, 503)},
                                  requestBody=table_part),
        ("GET", "/startcontainer"): _op(
            "P2PRC: start an instance", {"200": _json(_OBJECT), **_errors(400, 401, 404, 409, 429, 503)},
            description=_P2PRC_TRUST, parameters=[
                {"name": "ports", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {"name": "GPU", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
                {"name": "ContainerName", "in": "query", "schema": {"type": "string"}},
                {"name": "BaseImage", "in": "query", "schema": {"type": "string"}},
                {"name": "PublicKey", "in": "query", "required": True,
                 "schema": {"type": "string", "format": "byte", "minLength": 4}}]),
        ("GET", "/RemoveContainer"): _op(
            "P2PRC: remove an instance", {"200": {"description": "success", "content": {"text/plain": {
                "schema": _TEXT_ANSWER}}}, **_errors(*_SECURED)}, description=_P2PRC_TRUST,
            parameters=[{"name": "id", "in": "query", "required": True, "schema": _REF}]),
        ("GET", "/ShowImages"): _op("P2PRC: images offered", {"200": _json(_OBJECT), **_errors(401, 429, 503)}),
    }


# What each route does and answers, keyed by the method and rule its route declares: a route
# without an entry stops the app from being built (check_described).
OPERATIONS: dict[Route, dict] = {**_service_operations(), **_instance_operations(), **_move_operations(),
                                 **_replica_operations(), **_fleet_operations(), **_p2prc_operations()}
_RULE_PARAMETER = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)(?::[^>]*)?>")  # Bottle's <name> and <name:filter[:conf]>


def path_of(rule: str) -> tuple[str, list[str]]:
    """The OpenAPI path of a Bottle rule, and its parameters' names in order."""
    return _RULE_PARAMETER.sub(r"{\1}", rule), _RULE_PARAMETER.findall(rule)


def check_described(routes: Iterable[BottleRoute], operations: Optional[dict[Route, dict]] = None) -> None:
    """Every route has an entry in ``operations``; raise naming the first that has none. (An entry
    that no route declares is left out of the document; the suite fails on it.)"""
    table = OPERATIONS if operations is None else operations
    for method, rule in sorted({(route.method, route.rule) for route in routes} - set(table)):
        raise ValueError(f"route {method} {rule} is not described: add its entry to openapi.OPERATIONS")


def _operation(route: BottleRoute) -> dict:
    """A route's entry, with the parameters its rule names and the security its access rule implies."""
    entry = OPERATIONS[(route.method, route.rule)]
    _, names = path_of(route.rule)
    given = {p["name"]: p for p in entry.get("parameters", ()) if p["in"] == "path"}
    if set(given) - set(names):
        raise ValueError(f"{route.method} {route.rule}: its entry names path parameters its rule does not")
    parameters = [given.get(name) or PATH_PARAMETERS[name] for name in names]
    parameters += [p for p in entry.get("parameters", ()) if p["in"] != "path"]
    access = route.config.get("access")
    operation = {**entry, "x-dockpool-access": access}
    operation.pop("parameters", None)
    if parameters:
        operation["parameters"] = parameters
    if access in TOKEN_ACCESS:
        operation["security"] = [{"bearer": []}]
    return operation


def openapi_document(version: str, routes: Iterable[BottleRoute]) -> dict:
    """The document of the app whose ``routes`` are given: one operation per route, in their order."""
    paths: dict[str, dict] = {}
    for route in routes:
        paths.setdefault(path_of(route.rule)[0], {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.0.3",
        "info": {"title": "dockpool provider API", "version": version,
                 "description": "Instances you reach by SSH, on a provider's Docker engine. P2PRC's routes are kept. "
                                "Each operation's x-dockpool-access is the access rule its route declares: "
                                "fleet and grant routes are served only on the fleet's listener (mutual TLS)."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR, "Port": _PORT, "Instance": _INSTANCE, "Peer": _PEER, "PeerTable": _TABLE},
        },
    }

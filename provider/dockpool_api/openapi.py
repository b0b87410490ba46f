"""The OpenAPI 3.0.3 description of every route, served at /openapi.json. It follows 3.0's rules
(``nullable: true``, never 3.1's type lists); the suite checks it with openapi-spec-validator."""
from __future__ import annotations

from typing import Any

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


def _op(summary: str, responses: dict, secured: bool = False, **extra: Any) -> dict:
    op = {"summary": summary, "responses": responses}
    if secured:
        op["security"] = [{"bearer": []}]
    op.update(extra)
    return op


# An instance's name or its id, as instances.py resolves a reference.
_REF = {"type": "string", "pattern": f"{NAME_PATTERN}|{ID_PATTERN}"}
_REF_PARAM = {"name": "ref", "in": "path", "required": True, "schema": _REF, "description": "instance id or name"}
_OBJECT = {"type": "object"}
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
_MOVE_PARAM = {"name": "move", "in": "path", "required": True, "schema": {"type": "string"}, "description": "a move's id"}


# What a route that takes a token and names an instance may answer besides success.
_SECURED = (400, 401, 404, 429, 503)
_DRAIN = {"type": "object", "required": ["draining", "since"],
          "properties": {"draining": {"type": "boolean"}, "since": {"type": "string", "nullable": True}}}


def _service_paths() -> dict:
    """The provider's own routes: status, health, this document, metrics, what it offers."""
    return {
        "/": {"get": _op("The status page: specs, capacity, peers, and your instances with a token (#token=... in a browser)",
                         {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
                          **_errors(401, 429, 503)})},
        "/healthz": {"get": _op("Is the Docker engine reachable?", {"200": _json(_OBJECT), **_errors(401, 429, 503)})},
        "/openapi.json": {"get": _op("This document", {"200": _json(_OBJECT)})},
        "/metrics": {"get": _op(
            "Prometheus metrics",
            {"200": {"description": "text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
             **_errors(401, 429)},
            description="Without a token, or with an ordinary client's, no series names a client. With the operator's "
                        "scrape credential or an admin's token, also each client's usage and each replica's.")},
        "/v1/specs": {"get": _op("The provider's hardware", {"200": _json(_OBJECT), **_errors(401, 429)})},
        "/v1/images": {"get": _op("Images offered", {"200": _json({"type": "object", "required": ["images"],
                                                                     "properties": {"images": {"type": "array"}}}),
                                                       **_errors(401, 429, 503)})},
        "/v1/drain": {
            "get": _op("Is this provider draining (taking no new instance)?", {"200": _json(_DRAIN), **_errors(401, 429)}),
            "put": _op("Start or end draining (an admin, or the operator's local credential from the provider "
                       "itself): while it lasts, creations and moves in answer 409",
                       {"200": _json(_DRAIN), **_errors(400, 401, 429)}, secured=True,
                       requestBody={"required": True, "content": {"application/json": {"schema": {
                           "type": "object", "required": ["draining"], "additionalProperties": False,
                           "properties": {"draining": {"type": "boolean"}}}}}}),
        },
        "/v1/drain/moves": {"post": _op(
            "Move every instance to other members of the fleet that take it (as PUT /v1/drain, while draining); each moved "
            "one with where it went and how long its client was cut off, each that fits nowhere with the reasons",
            {"200": _json({"type": "object", "required": ["moved", "stayed"], "properties": {
                "moved": {"type": "array"}, "stayed": {"type": "array"}}}), **_errors(401, 409, 429, 503)},
            secured=True)},
    }


def _instances_paths() -> dict:
    """A client's instances."""
    return {
        "/v1/instances": {
            "get": _op("Your instances (all, for an admin)", {"200": _json({"type": "object", "required": ["instances"],
                "properties": {"instances": {"type": "array", "items": _ref("Instance")}}}), **_errors(401, 429, 503)},
                secured=True),
            "post": _op("Create an instance", {"201": _json(_ref("Instance"), "created"),
                                               **_errors(400, 401, 402, 404, 409, 413, 429, 503)},
                        secured=True, requestBody={"required": True, "content": {"application/json": {"schema": _CREATE}}}),
        },
        "/v1/instances/{ref}": {
            "get": _op("One of your instances", {"200": _json(_ref("Instance")), **_errors(*_SECURED)}, secured=True,
                       parameters=[_REF_PARAM]),
            "delete": _op("Remove an instance", {"200": _json(_OBJECT), **_errors(*_SECURED)}, secured=True,
                          parameters=[_REF_PARAM]),
        },
        "/v1/instances/{ref}/stop": {"post": _op("Stop and keep an instance", {"200": _json(_ref("Instance")),
                                                                               **_errors(*_SECURED)},
                                                 secured=True, parameters=[_REF_PARAM])},
        "/v1/instances/{ref}/start": {"post": _op("Start a stopped instance", {"200": _json(_ref("Instance")),
                                                                               **_errors(*_SECURED, 402)},
                                                  secured=True, parameters=[_REF_PARAM])},
        "/v1/instances/{ref}/move": {"post": _op(
            "Move your instance to another provider of this one's fleet, with the move and grant that provider gave "
            "(POST /v1/moves there): stopped, committed, streamed there, removed here once it answers SSH there",
            {"200": _json(_OBJECT), **_errors(400, 401, 404, 409, 413, 429, 503),
             "502": _json(_ref("Error"), "the target refused or failed; the instance is where it was, running again")},
            secured=True, parameters=[_REF_PARAM], requestBody={"required": True, "content": {"application/json": {
                "schema": {"type": "object", "required": ["target", "move", "grant"], "additionalProperties": False,
                           "properties": {"target": {"type": "string"}, "move": {"type": "string"},
                                          "grant": {"type": "string"}}}}}})},
        "/v1/instances/{ref}/replicate": {"post": _op(
            "Refresh your instance's replica on another member of the fleet now: frozen while its filesystem is read, "
            "then what changed since the last refresh is shipped (the first time, all of it). At most "
            "replica_refreshes_per_hour of one instance and replica_client_refreshes_per_hour of all yours (429 with "
            "Retry-After naming the limit); 402 while your package's budget is spent; what it cost this provider (its "
            "CPU time, the bytes shipped as egress) is charged to your usage; 409 when no member has room (each "
            "holder keeps a client to replica_client_share of what it holds)",
            {"200": _json(_OBJECT), **_errors(*_SECURED, 402, 409)}, secured=True, parameters=[_REF_PARAM])},
        "/v1/usage": {"get": _op(
            "What your instances used here over a time range (from the start of this month to now unless asked), "
            "per instance and in total; an administrator reads every client's, or one's",
            {"200": {"description": "OK", "content": {"application/json": {"schema": _OBJECT},
                                                      "text/csv": {"schema": {"type": "string"}}}},
             **_errors(400, 401, 403, 429)}, secured=True, parameters=_USAGE_PARAMS)},
        "/v1/instances/{ref}/replicas": {"get": _op(
            "Your instance's replica: its holder, whether the holder is live, its age and the last refresh's cost",
            {"200": _json(_OBJECT), **_errors(*_SECURED)}, secured=True, parameters=[_REF_PARAM])},
    }


def _moves_paths() -> dict:
    """Moves: a client's grant, then the pull and export between providers."""
    return {
        "/v1/moves": {"post": _op("Would an instance fit here? A grant to move it in (single use, 10 minutes)",
                                  {"201": _json(_OBJECT, "granted"), **_errors(400, 401, 404, 409, 413, 429, 503)},
                                  secured=True, requestBody={"required": True, "content": {"application/json": {"schema": _CREATE}}})},
        "/v1/moves/{move}": {
            "get": _op("A move's progress here: its state and the bytes received", {"200": _json(_OBJECT),
                       **_errors(401, 404, 429)}, secured=True, parameters=[_MOVE_PARAM]),
            "delete": _op("Give back a grant you will not use (a move under way cannot be)", {"200": _json(_OBJECT),
                          **_errors(401, 404, 409, 429)}, secured=True, parameters=[_MOVE_PARAM]),
        },
        "/v1/moves/{move}/pull": {"post": _op("On the fleet's listener only (mutual TLS), from the source the grant "
                                              "names: fetch the snapshot, check and load it, create the instance",
                                              {"201": _json(_ref("Instance")), **_errors(400, 401, 404, 409, 413, 429, 503),
                                               "502": _json(_ref("Error"), "the source's snapshot could not be fetched")},
                                              secured=True, parameters=[_MOVE_PARAM],
                                              requestBody={"required": True, "content": {"application/json": {"schema": _OBJECT}}})},
        "/v1/fleet/offers": {"post": _op(
            "On the fleet's listener only (mutual TLS), from a member draining: a move grant for its client's "
            "instance, as POST /v1/moves gives the client", {"201": _json(_OBJECT, "granted"),
                                                              **_errors(400, 401, 404, 409, 413, 429, 503)},
            requestBody={"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["client", "request", "start"], "additionalProperties": False,
                "properties": {"client": {"type": "string"}, "request": _CREATE, "start": {"type": "boolean"}}}}}})},
        "/v1/fleet/moves/{move}": {"get": _op(
            "On the fleet's listener only (mutual TLS), from a move's source that lost the answer or was "
            "restarted: the instance its export became here ({state: done, name}), or {state: moving}; 404 "
            "when nothing here holds it", {"200": _json(_OBJECT), **_errors(401, 404, 429)},
            parameters=[_MOVE_PARAM])},
        "/v1/fleet/replicas/{ref}": {
            "put": _op("On the fleet's listener only (mutual TLS): a refresh of the calling member's replica of its "
                       "instance, a tar with Content-Length, X-Dockpool-Refresh and X-Dockpool-Parent (empty: a full "
                       "copy); 409 when the chain here does not end with the parent, 507 when it does not fit",
                       {"200": _json(_OBJECT), **_errors(400, 401, 409, 429), "507": _json(_ref("Error"), "no room")},
                       parameters=[_REF_PARAM], requestBody={"required": True, "content": {"application/octet-stream": {
                           "schema": {"type": "string", "format": "binary"}}}}),
            "get": _op("On the fleet's listener only: the calling member's replica held here, and the room for a "
                       "refresh of it (within the owner's share, when she is named)",
                       {"200": _json(_OBJECT), **_errors(400, 401, 404, 429)}, parameters=[_REF_PARAM, _OWNER_PARAM]),
            "delete": _op("On the fleet's listener only: drop the calling member's replica",
                          {"200": _json(_OBJECT), **_errors(401, 429)}, parameters=[_REF_PARAM]),
        },
        "/v1/replicas": {"get": _op(
            "The replicas held here of your instances on other providers ({replicas: [{provider, instance, refreshed, "
            "bytes, restored}]}); an administrator sees every one", {"200": _json(_OBJECT), **_errors(401, 429)},
            secured=True)},
        "/v1/replicas/{source}/{name}/restore": {"post": _op(
            "Start your instance here from its last replica, with its name, key and limits, once its provider has "
            "expired from the fleet (409 while it is a live member, or when restored already; the same admission "
            "as a create)", {"201": _json(_ref("Instance"), "restored"), **_errors(*_SECURED)}, secured=True,
            parameters=[{"name": n, "in": "path", "required": True, "schema": {"type": "string", "pattern": NAME_PATTERN}}
                        for n in ("source", "name")])},
        "/v1/exports/{move}": {"get": _op("On the fleet's listener only (mutual TLS), from the target the secret names: "
                                          "the stopped instance's filesystem as docker export streams it",
                                          {"200": {"description": "a tar archive", "content": {"application/x-tar": {
                                              "schema": {"type": "string", "format": "binary"}}}},
                                           **_errors(401, 409, 429, 503)},
                                          secured=True, parameters=[_MOVE_PARAM])},
    }


def _fleet_paths() -> dict:
    """The peer table and the fleet's exchanges."""
    return {
        "/v1/peers": {
            "get": _op("The peer table", {"200": _json(_ref("PeerTable")), **_errors(401, 429)}),
            "post": _op("Post P2PRC peers (kept in P2PRC's tier if they answer, never members of the fleet): a "
                        "client's token, or a P2PRC peer in a network the operator trusts; answers P2PRC's table",
                        {"200": _json(_ref("PeerTable")), **_errors(400, 401, 413, 429, 503)}, secured=True,
                        requestBody={"required": True, "content": {"application/json": {"schema": _ref("PeerTable")}}}),
        },
        "/v1/peers/{ref}": {"delete": _op("Remove a peer table entry by name or address (administrators)",
                                          {"200": _json(_OBJECT), **_errors(401, 404, 429)}, secured=True,
                                          parameters=[{"name": "ref", "in": "path", "required": True,
                                                       "schema": {"type": "string"}}])},
        "/v1/fleet": {"get": _op("This provider's view of the fleet: its exchange rounds and the live peers, "
                                 "each with its tier and when it was last heard from", {"200": _json(_FLEET), **_errors(401, 429)})},
        "/v1/fleet/exchange": {"post": _op("On the fleet's listener only (mutual TLS): another member's table "
                                           "exchange; refused here", {"200": _json(_ref("PeerTable")),
                                                                      **_errors(400, 401, 413, 429, 503)},
                                           requestBody={"required": True, "content": {"application/json": {
                                               "schema": _ref("PeerTable")}}})},
        "/v1/fleet/gossip": {"post": _op("On the fleet's listener only (mutual TLS): one step of another member's "
                                         "exchange (a summary first, then only what differs); refused here",
                                         {"200": _json(_OBJECT), **_errors(400, 401, 413, 429, 503)},
                                         requestBody={"required": True, "content": {"application/json": {
                                             "schema": _OBJECT}}})},
        "/v1/fleet/probe": {"post": _op("On the fleet's listener only (mutual TLS): probe the member {name} for "
                                        "another that could not reach it; answers {ack}; refused here",
                                        {"200": _json(_OBJECT), **_errors(400, 401, 413, 429, 503)},
                                        requestBody={"required": True, "content": {"application/json": {
                                            "schema": _OBJECT}}})},
        "/v1/fleet/identity": {"get": _op("On the fleet's listener only (mutual TLS): this provider's name and "
                                          "membership key; refused here", {"200": _json(_OBJECT), **_errors(401, 429)})},
    }


def _speedtest_paths() -> dict:
    """The speed test."""
    return {
        "/v1/speedtest/download": {"get": _op("Download N zero bytes", {
            "200": {"description": "bytes", "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                                 "format": "binary"}}}},
            **_errors(400, 401, 429)}, parameters=[{"name": "bytes", "in": "query", "required": False,
                                                    "schema": {"type": "integer", "minimum": 1, "maximum": 52428800}}])},
        "/v1/speedtest/upload": {"post": _op("Upload bytes, read and discarded", {
            "200": _json({"type": "object", "required": ["bytes", "seconds"],
                          "properties": {"bytes": {"type": "integer"}, "seconds": {"type": "number"}}}),
            **_errors(401, 413, 429)},
            requestBody={"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}})},
    }


def _p2prc_paths() -> dict:
    """P2PRC's routes, kept for its clients."""
    upload = {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}}}}
    table_part = {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["json"], "properties": {"json": _ref("PeerTable")}},
        "encoding": {"json": {"contentType": "application/json"}}}}}
    return {
        "/server_info": {"get": _op("P2PRC: the provider's specs", {"200": _json(_OBJECT), **_errors(401, 429)})},
        "/50": {"get": _op("P2PRC: a 50 MiB body", {"200": {"description": "bytes", "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}, **_errors(401, 429)})},
        "/upload": {
            "post": _op("P2PRC: upload a file, read and discarded", {"200": {"description": "'<name>' uploaded!",
                        "content": {"text/plain": {"schema": {"type": "string"}}}}, **_errors(400, 401, 413, 429)},
                        requestBody=upload),
            "get": _op("P2PRC: the same, for clients that send the form with GET", {"200": {
                "description": "'<name>' uploaded!", "content": {"text/plain": {"schema": {"type": "string"}}}},
                **_errors(400, 401, 413, 429)}),
        },
        "/IpTable": {"post": _op("P2PRC: merge a peer table (who may: as POST /v1/peers)", {"200": _json(_ref("PeerTable")),
                                 **_errors(400, 401, 413, 429, 503)}, secured=True, requestBody=table_part)},
        "/startcontainer": {"get": _op("P2PRC: start an instance", {"200": _json(_OBJECT), **_errors(400, 401, 404, 409, 429, 503)},
                                       secured=True, description=_P2PRC_TRUST, parameters=[
            {"name": "ports", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            {"name": "GPU", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}},
            {"name": "ContainerName", "in": "query", "schema": {"type": "string"}},
            {"name": "BaseImage", "in": "query", "schema": {"type": "string"}},
            {"name": "PublicKey", "in": "query", "required": True, "schema": {"type": "string", "format": "byte", "minLength": 4}},
        ])},
        "/RemoveContainer": {"get": _op("P2PRC: remove an instance", {"200": {"description": "success", "content": {
            "text/plain": {"schema": {"type": "string"}}}}, **_errors(*_SECURED)}, secured=True, description=_P2PRC_TRUST,
            parameters=[{"name": "id", "in": "query", "required": True, "schema": _REF}])},
        "/ShowImages": {"get": _op("P2PRC: images offered", {"200": _json(_OBJECT), **_errors(401, 429, 503)})},
    }


def openapi_document(version: str) -> dict:
    paths = {**_service_paths(), **_instances_paths(), **_moves_paths(), **_fleet_paths(), **_speedtest_paths(),
             **_p2prc_paths()}
    return {
        "openapi": "3.0.3",
        "info": {"title": "dockpool provider API", "version": version,
                 "description": "Instances you reach by SSH, on a provider's Docker engine. P2PRC's routes are kept."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _ERROR, "Port": _PORT, "Instance": _INSTANCE, "Peer": _PEER, "PeerTable": _TABLE},
        },
    }

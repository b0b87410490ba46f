"""The create request (spec.REQUEST_FIELDS) as each adapter states it: the Ansible module's
options and their documentation, the API's JSON schema, the command line's flags.

Each adapter takes its form from here, so a field added, renamed or re-documented in
spec.py reaches all of them; tests/unit/test_create_request.py checks that they did.
The core never imports Ansible: these are plain mappings.
"""
from __future__ import annotations

from typing import Any

from .spec import REQUEST_FIELDS, RequestField

_ANSIBLE_TYPES = {"count": "int", "cpus": "int", "flag": "bool", "share": "float"}  # every other kind is text
_JSON_TYPES = {"count": "integer", "cpus": "integer", "flag": "boolean", "share": "number"}


def _default_line(f: RequestField) -> list[str]:
    return [f"A new instance gets {f.default} when not given."] if f.default else []


def module_options() -> dict[str, dict[str, Any]]:
    """``argument_spec`` entries of the module's request options."""
    options: dict[str, dict[str, Any]] = {}
    for f in REQUEST_FIELDS:
        option: dict[str, Any] = {"type": _ANSIBLE_TYPES.get(f.kind, "str")}
        if f.choices:
            option["choices"] = list(f.choices)
        if f.kind == "key":
            option["no_log"] = False  # a public key is no secret
        options[f.name] = option
    options["name"]["required"] = True
    return options


def module_documentation() -> dict[str, dict[str, Any]]:
    """The DOCUMENTATION ``options`` entries of the request options, as ansible-doc reads them."""
    docs: dict[str, dict[str, Any]] = {}
    options = module_options()
    for f in REQUEST_FIELDS:
        option = options[f.name]
        entry: dict[str, Any] = {"description": [f.doc, *_default_line(f)], "type": option["type"]}
        for key in ("required", "choices"):
            if key in option:
                entry[key] = option[key]
        docs[f.name] = entry
    return docs


def json_schema() -> dict[str, Any]:
    """The API's create request body: the fields a client may send."""
    properties: dict[str, Any] = {}
    for f in REQUEST_FIELDS:
        if not f.client:
            continue
        prop: dict[str, Any] = {"type": _JSON_TYPES.get(f.kind, "string"),
                                "description": " ".join([f.doc, *_default_line(f)])}
        if f.low is not None:
            prop["minimum"] = f.low
        properties[f.name] = prop
    return {"type": "object", "additionalProperties": False, "required": ["public_key"], "properties": properties}


def cli_flags(filled: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """argparse ``(flag, keywords)`` for each field a client may send but those the CLI ``filled`` itself."""
    flags = []
    for f in REQUEST_FIELDS:
        if not f.client or f.name in filled:
            continue
        keywords: dict[str, Any] = {"dest": f.name, "help": f"{f.doc} Default: {f.default}." if f.default else f.doc}
        if f.kind == "flag":
            keywords["action"] = "store_true"
        elif f.kind in _ANSIBLE_TYPES:
            keywords["type"] = float if _ANSIBLE_TYPES[f.kind] == "float" else int
        flags.append(("--" + f.name.replace("_", "-"), keywords))
    return flags

"""Booleans work however an operator passes them: `-e sshd_keep_port_22=false` arrives as the
string "false", which is true in a condition. Every use of a role variable that the role's
argument specs declare `type: bool` must go through `| bool`."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from support.paths import ROOT


def bool_variables() -> dict[str, Path]:
    found = {}
    for specs in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        options = yaml.safe_load(specs.read_text())["argument_specs"]["main"]["options"]
        found.update({name: specs.parents[1] for name, option in options.items() if option.get("type") == "bool"})
    return found


def uses_without_bool(name: str, text: str) -> list[str]:
    """Lines using ``name`` in an expression that does not pass it through ``| bool``."""
    pattern = re.compile(rf"\b{re.escape(name)}\b(?!\s*\|\s*bool)(?!:)")
    return [line.strip() for line in text.splitlines() if pattern.search(line) and not line.lstrip().startswith("#")]


def test_the_scan_catches_a_bare_use():
    assert uses_without_bool("sshd_keep_port_22", "when: sshd_keep_port_22") == ["when: sshd_keep_port_22"]
    assert uses_without_bool("sshd_keep_port_22", "x: '{{ [22] if sshd_keep_port_22 | bool else [] }}'") == []
    assert uses_without_bool("sshd_keep_port_22", "sshd_keep_port_22: true") == []  # a definition


def test_every_bool_variable_is_read_through_the_bool_filter():
    variables = bool_variables()
    assert {"sshd_keep_port_22", "iaas_user_sudo", "cadvisor_privileged"} <= set(variables)
    bare = []
    for name, role in variables.items():
        for path in sorted((role / "tasks").glob("*.yml")) + sorted((role / "templates").glob("*.j2")) + \
                sorted((role / "handlers").glob("*.yml")):
            bare += [f"{path.relative_to(ROOT)}: {line}" for line in uses_without_bool(name, path.read_text())]
    assert bare == []

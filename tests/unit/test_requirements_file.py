"""requirements.yml lists every collection the roles and playbooks use, at the versions
the pinned `ansible` bundle carries (what CI and this project's machines run)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import ansible_collections
import yaml

from support.paths import ROOT

FQCN = re.compile(r"\b([a-z_]+\.[a-z_]+)\.[a-z_]+:")


def used_collections() -> set[str]:
    files = [ROOT / "provision.yml", *(ROOT / "roles").rglob("*.yml"), *(ROOT / "playbooks").rglob("*.yml")]
    found = {m.group(1) for path in files for m in FQCN.finditer(path.read_text())}
    return {name for name in found if not name.startswith("ansible.builtin")}


def test_every_collection_used_is_listed_at_the_bundled_version():
    listed = {c["name"]: c["version"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    assert used_collections() <= set(listed), used_collections() - set(listed)
    bundle = Path(next(iter(ansible_collections.__path__)))
    for name, version in listed.items():
        namespace, collection = name.split(".")
        manifest = json.loads((bundle / namespace / collection / "MANIFEST.json").read_text())
        assert manifest["collection_info"]["version"] == version, name

"""New code reaches the provider's running programs: a provision.yml run that installs changed
core or API packages restarts the API and the firewall's watcher, which import them at start.

Run by the molecule `provision` scenario's verify step (as test_provider.py), or against the
sandbox with DOCKPOOL_E2E_HOST=dockpool-sandbox and DOCKPOOL_E2E_INVENTORY set to the absolute
path of a clone's inventory/sandbox.yml (the clone whose .sandbox made it).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support.ansible_run import PlayResult, run_playbook_file
from support.checkout import copy_checkout
from support.paths import ROOT

HOST = os.environ.get("DOCKPOOL_E2E_HOST", "")
INVENTORY = os.environ.get("DOCKPOOL_E2E_INVENTORY", "")
if not HOST:
    pytest.skip("run by the molecule provision scenario (tests/e2e/molecule/provision)", allow_module_level=True)

UNITS = ("dockpool-api.service", "dockpool-firewall.service")


def on_provider(*argv: str) -> str:
    return subprocess.run(["docker", "exec", HOST, *argv], capture_output=True, text=True, check=True, timeout=60,
                          stdin=subprocess.DEVNULL).stdout


def main_pids() -> dict[str, str]:
    return {unit: on_provider("systemctl", "show", "-p", "MainPID", "--value", unit).strip() for unit in UNITS}


def install_code(checkout: Path) -> PlayResult:
    return run_playbook_file(checkout / "provision.yml", inventory=INVENTORY, host=HOST,
                             tags=["role::dockpool_core:files"], checkout=checkout)


def test_new_code_reaches_the_running_api_and_firewall_watcher(tmp_path):
    before = main_pids()
    newer = copy_checkout(tmp_path / "newer")
    changed = newer / "plugins" / "module_utils" / "dockpool" / "__init__.py"
    changed.write_text(changed.read_text() + "# a newer release\n")
    try:
        ran = install_code(newer)
        assert ran.rc == 0 and ran.changed >= 1, ran.raw[-3000:]
        assert "# a newer release" in on_provider("cat", "/opt/dockpool/lib/dockpool/__init__.py")
        after = main_pids()
        assert all(after[unit] not in ("0", before[unit]) for unit in UNITS), (before, after)
    finally:
        back = install_code(ROOT)
    assert back.rc == 0, back.raw[-3000:]

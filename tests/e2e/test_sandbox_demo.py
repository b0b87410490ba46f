"""The sandbox's last part (playbooks/sandbox_demo.yml) run from two clones of the repository:
each clone has its own client key, and the second must reach the instance's shell as the first did.

Run by the molecule `provision` scenario's verify step against its provider (as in
test_provider.py). To run it against the real sandbox instead (after `make sandbox`):
  DOCKPOOL_E2E_HOST=dockpool-sandbox DOCKPOOL_E2E_INVENTORY=inventory/sandbox.yml \
  DOCKPOOL_E2E_SSH_PORT=22000 DOCKPOOL_E2E_TLS_API=https://127.0.0.1:8443 \
  DOCKPOOL_E2E_CLIENT=demo DOCKPOOL_E2E_CACHE=.sandbox .venv/bin/pytest tests/e2e/test_sandbox_demo.py
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from support.ansible_run import PlayResult, run_playbook_file
from support.paths import ROOT
from support.ssh import make_keypair

HOST = os.environ.get("DOCKPOOL_E2E_HOST", "")
INVENTORY = os.environ.get("DOCKPOOL_E2E_INVENTORY", "")
SSH_PORT = int(os.environ.get("DOCKPOOL_E2E_SSH_PORT", "0"))
TLS_API = os.environ.get("DOCKPOOL_E2E_TLS_API", "")
CLIENT = os.environ.get("DOCKPOOL_E2E_CLIENT", "e2e")  # an ordinary client of the provider's API
CACHE = Path(os.environ.get("DOCKPOOL_E2E_CACHE", str(ROOT / ".cache")))
if not HOST:
    pytest.skip("run by the molecule provision scenario (tests/e2e/molecule/provision)", allow_module_level=True)


def clone(tmp_path: Path, name: str) -> Path:
    """A clone's .sandbox folder: its own client key, the client's token (the provider's, not the clone's)."""
    directory = tmp_path / name
    directory.mkdir(mode=0o700)
    make_keypair(directory, "client_ed25519")
    shutil.copy(CACHE / f"{CLIENT}.token", directory / f"{CLIENT}.token")
    return directory


def demo(directory: Path) -> PlayResult:
    return run_playbook_file(ROOT / "playbooks" / "sandbox_demo.yml", inventory=INVENTORY, host=HOST,
                             extra_vars={"sandbox_demo_host": HOST, "sandbox_dir": str(directory),
                                         "sandbox__api": TLS_API, "sandbox__jump_port": SSH_PORT,
                                         "sandbox__client": CLIENT})


def login_line(result: PlayResult) -> str:
    shown = [t["msg"] for t in result.tasks if isinstance(t.get("msg"), list)]
    assert shown, result.raw[-3000:]
    return shown[-1][0]


def test_a_second_clone_reaches_the_shell_as_the_first_did(tmp_path):
    first, second = clone(tmp_path, "first"), clone(tmp_path, "second")
    try:
        ran = demo(first)
        assert ran.rc == 0, ran.raw[-3000:]
        assert login_line(ran).startswith("logged in to "), ran.raw[-3000:]
        ran = demo(second)  # the instance still holds the first clone's key
        assert ran.rc == 0, ran.raw[-3000:]
        assert login_line(ran).startswith("logged in to "), ran.raw[-3000:]
        again = demo(second)
        assert again.rc == 0 and again.changed == 0, [t for t in again.tasks if t.get("changed")]
    finally:
        remove_instance(first)


def remove_instance(directory: Path) -> None:
    certificate = directory / "provider.crt"  # written by the play's first tasks
    if certificate.exists():
        token = (CACHE / f"{CLIENT}.token").read_text().strip()
        requests.delete(f"{TLS_API}/v1/instances/{CLIENT}-1", headers={"Authorization": f"Bearer {token}"},
                        verify=str(certificate), timeout=60)

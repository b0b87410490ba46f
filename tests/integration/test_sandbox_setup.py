"""The virtual environment `make sandbox` sets up (scripts/setup.sh sandbox) runs the README's
commands, the local fleet's among them, in a fresh copy of this checkout."""
from __future__ import annotations

import subprocess
from pathlib import Path

from support.checkout import copy_checkout


def setup_sandbox(checkout: Path) -> None:
    done = subprocess.run(["scripts/setup.sh", "sandbox"], cwd=checkout, capture_output=True, text=True, timeout=900,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def local_fleet_help(checkout: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(checkout / ".venv/bin/python"), "-m", "dockpool_dev.localfleet", "--help"], cwd=checkout,
                          capture_output=True, text=True, timeout=60)


def test_the_local_fleet_runs_from_the_sandbox_setup(tmp_path):
    checkout = copy_checkout(tmp_path / "clone")
    setup_sandbox(checkout)
    shown = local_fleet_help(checkout)
    assert shown.returncode == 0, shown.stderr
    assert "start" in shown.stdout and "stop" in shown.stdout
    # A venv from an earlier sandbox setup, whose requirements are current, gets the tools on the next run.
    subprocess.run([str(checkout / ".venv/bin/pip"), "uninstall", "-q", "-y", "dockpool-dev"], check=True, timeout=120)
    setup_sandbox(checkout)
    assert local_fleet_help(checkout).returncode == 0

"""Run real ansible-playbook with the project's ansible.cfg and read its JSON report."""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from dockpool_dev.paths import ROOT, VENV_BIN


@dataclass
class PlayResult:
    rc: int
    stats: dict[str, int]
    tasks: list[dict[str, Any]]  # one result per task, for localhost
    raw: str

    @property
    def changed(self) -> int:
        return self.stats.get("changed", 0)

    def result(self, index: int = -1) -> dict[str, Any]:
        return self.tasks[index]


def run_playbook(
    tmp_path: Path,
    tasks: list[dict[str, Any]],
    check: bool = False,
    diff: bool = False,
    extra_vars: Optional[dict[str, Any]] = None,
    hosts: str = "local",
    inventory: Optional[str] = None,
) -> PlayResult:
    """Write ``tasks`` as a one-play playbook and run it (against the sandbox inventory by default)."""
    playbook = tmp_path / f"play-{len(list(tmp_path.glob('play-*.yml')))}.yml"
    playbook.write_text(yaml.safe_dump([{"name": "test", "hosts": hosts, "gather_facts": False, "tasks": tasks}]))
    return run_playbook_file(playbook, check, diff, extra_vars, inventory, "localhost" if hosts == "local" else hosts)


def run_playbook_file(
    playbook: Path,
    check: bool = False,
    diff: bool = False,
    extra_vars: Optional[dict[str, Any]] = None,
    inventory: Optional[str] = None,
    host: str = "localhost",
    tags: Optional[list[str]] = None,
    checkout: Path = ROOT,
) -> PlayResult:
    """Run a playbook with the ansible.cfg of ``checkout`` (this one, or a copy of it) and
    return ``host``'s results, per task."""
    argv = [str(VENV_BIN / "ansible-playbook"), str(playbook)]
    if tags:
        argv += ["--tags", ",".join(tags)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    # Only the project's settings: none of molecule's (when run from its verify step) may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(checkout / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_INVENTORY=inventory or str(ROOT / "inventory" / "sandbox.yml"))
    # stdin closed: ansible refuses a non-blocking one, as molecule's verify step hands down.
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=checkout, env=env, timeout=900, stdin=subprocess.DEVNULL)
    try:
        report = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError(f"ansible-playbook printed no JSON report (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from exc
    host_results = [task["hosts"].get(host, {}) for play in report["plays"] for task in play["tasks"]]
    return PlayResult(proc.returncode, report["stats"].get(host, {}), host_results, proc.stdout)

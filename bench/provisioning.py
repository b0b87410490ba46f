"""provision.yml on freshly booted sandbox hosts (systemd containers on this engine):
the first and the second run (which must report changed=0), for fleets of 1, 2 and 4
providers provisioned in one run with as many forks, to show how a fleet scales on
this 2-core machine."""
from __future__ import annotations

import argparse
import glob
import json
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import yaml

from bench.common import ROOT, save, table

FLEETS = (1, 2, 4)
VENV_BIN = ROOT / ".venv" / "bin"


def playbook(argv: list[str]) -> subprocess.CompletedProcess:
    env = {"PATH": f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(Path.home()),
           "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=3600)


def hosts_state(names: list[str], state: str) -> None:
    for name in names:
        done = playbook([str(ROOT / "playbooks" / "sandbox_host.yml"), "-e",
                         json.dumps({"sandbox_host": name, "sandbox_published_ports": [], "sandbox_state": state})])
        if done.returncode != 0:
            raise RuntimeError(f"sandbox_host.yml ({name}, {state}) failed: {done.stdout[-2000:]}")
        if state == "absent":
            for volume in (f"{name}-apt-cache", f"{name}-pip-cache"):  # every fleet starts cold
                subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)


def inventory(path: Path, names: list[str]) -> Path:
    cache = ROOT / ".cache"
    hosts = {
        name: {
            "ansible_connection": "community.docker.docker",
            "dockpool_core_provider": {"port_range": f"{46000 + 100 * i}-{46099 + 100 * i}", "bind_address": "0.0.0.0"},
            "dockpool_core_public_address": "127.0.0.1",
        }
        for i, name in enumerate(names)
    }
    common = {
        "iaas_user_authorized_keys": [(cache / "operator_ed25519.pub").read_text().strip()],
        "images_base_image": "local/debian:bookworm",
        "images_archives": [{"path": str(cache / "base-image.tar"), "image": "local/debian:bookworm"}],
        "docker_engine_ca_certificates": sorted(glob.glob("/usr/local/share/ca-certificates/*.crt")),
        "cadvisor_state": "absent",
    }
    path.write_text(yaml.safe_dump({"providers": {"hosts": hosts, "vars": common}}))
    return path


def timed_run(inv: Path, forks: int, tags: Optional[str]) -> dict[str, Any]:
    argv = ["-i", str(inv), "--forks", str(forks), str(ROOT / "provision.yml")] + (["--tags", tags] if tags else [])
    started = time.perf_counter()
    done = playbook(argv)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"provision.yml failed: {done.stdout[-3000:]}")
    stats = json.loads(done.stdout)["stats"]
    return {"wall_s": wall, "changed": sum(s["changed"] for s in stats.values()), "hosts": len(stats)}


def prepare_material() -> None:
    """The operator key and base image archive the inventory refers to (as the sandbox makes them)."""
    done = playbook([str(ROOT / "playbooks" / "local_material.yml")])
    if done.returncode != 0:
        raise RuntimeError(f"preparing the test material failed: {done.stdout[-2000:]}")


def run(fleets: tuple[int, ...] = FLEETS, tags: Optional[str] = None) -> dict[str, Any]:
    prepare_material()
    rows = []
    for size in fleets:
        names = [f"bench-provider-{i + 1}" for i in range(size)]
        hosts_state(names, "present")
        try:
            inv = inventory(ROOT / ".cache" / f"bench-fleet-{size}.yml", names)
            first = timed_run(inv, size, tags)
            second = timed_run(inv, size, tags)
        finally:
            hosts_state(names, "absent")
        rows.append({"providers": size, "first_s": first["wall_s"], "second_s": second["wall_s"],
                     "first_changed": first["changed"], "second_changed": second["changed"]})
    return {"fleets": rows, "tags": tags, "met": all(r["second_changed"] == 0 for r in rows)}


def report(result: dict[str, Any]) -> str:
    rows = [[r["providers"], r["first_s"], r["first_s"] / r["providers"], r["second_s"], r["second_changed"]]
            for r in result["fleets"]]
    return (table(rows, ["providers", "first run s", "first s/provider", "second run s", "second changed"])
            + f"\nsecond run changed=0 everywhere: {'yes' if result['met'] else 'NO'}")


def chart(result: dict[str, Any], path: Path) -> None:
    from bench.charts import line_chart

    sizes = [r["providers"] for r in result["fleets"]]
    line_chart(path, "provision.yml on fresh sandbox providers (2 cores)", "providers in one run", "wall seconds",
               {"first run": (sizes, [r["first_s"] for r in result["fleets"]]),
                "second run (changed=0)": (sizes, [r["second_s"] for r in result["fleets"]])})


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    result = run()
    save("provisioning", result)
    print(report(result))


if __name__ == "__main__":
    main()

"""Register gVisor's runsc with this machine's Docker engine, for the tests and benchmarks
that run instances under both runtimes (scripts/setup.sh runs it as root).

Only `runtimes.runsc` of /etc/docker/daemon.json is added or corrected; the rest of the
file stays as it was. The engine reloads its runtimes on SIGHUP, so nothing running on
it restarts. The arguments are the ones the docker_engine role gives providers (read by
the same core function)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from dockpool.gvisor import read_runsc

DAEMON_JSON = Path("/etc/docker/daemon.json")


def engine_runtimes() -> dict:
    out = subprocess.run(["docker", "info", "--format", "{{json .Runtimes}}"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def reload_engine() -> None:
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "reload", "docker"], check=True)
    else:  # dockerd started by scripts/start-docker.sh, without systemd
        for comm in Path("/proc").glob("[0-9]*/comm"):
            try:
                if comm.read_text().strip() == "dockerd":
                    os.kill(int(comm.parent.name), signal.SIGHUP)
            except (FileNotFoundError, ProcessLookupError):  # a process that ended meanwhile
                continue


def main() -> int:
    runsc = read_runsc()
    if runsc is None:
        print("runsc is not installed: gVisor tests and benchmarks will be skipped", file=sys.stderr)
        return 0
    wanted = {"path": runsc["path"], "runtimeArgs": runsc["network_arguments"]}
    config = json.loads(DAEMON_JSON.read_text()) if DAEMON_JSON.exists() else {}
    if config.get("runtimes", {}).get("runsc") == wanted and "runsc" in engine_runtimes():
        return 0
    config.setdefault("runtimes", {})["runsc"] = wanted
    DAEMON_JSON.parent.mkdir(parents=True, exist_ok=True)
    DAEMON_JSON.write_text(json.dumps(config, indent=2) + "\n")
    reload_engine()
    for _ in range(50):  # the reload is asynchronous: up to 10 s
        if "runsc" in engine_runtimes():
            print(f"registered runsc with this machine's engine ({' '.join(wanted['runtimeArgs']) or 'no arguments'})")
            return 0
        time.sleep(0.2)
    print("the engine did not pick up runsc after a reload; see its log", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

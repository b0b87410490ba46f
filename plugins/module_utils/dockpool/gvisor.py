"""gVisor's runsc on this host: whether it is there, its version, and the arguments the
engine must pass it for instances to start.

Why an argument can be needed: runsc refuses to set up its own network stack when it
believes it runs in the host's root network namespace, and up to its 2024-07-31 fix it
decided that by the presence of /proc/sys/net/core/rmem_default. Linux 6.8 made that
setting per namespace, so on newer kernels such a runsc sees every namespace as the
root one ("cannot run with network enabled in root network namespace") on a real host
and in a container host alike. There, ``--network=host`` is the way it runs: the
sandbox hands its sockets to the host kernel inside the instance's own network
namespace (Docker's veth, the firewall's rules) instead of gVisor's netstack.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from typing import Any, Optional

RMEM_DEFAULT = "/proc/sys/net/core/rmem_default"
FIXED_RELEASE = 20240801  # the first gVisor release that tells namespaces apart by dev_weight instead
HOST_NETWORK = "--network=host"
# The host's pids limit counts a gVisor sandbox's own threads: measured here (ptrace platform,
# 2 cores) about 40 for the sandbox, 96 with sshd, and 8 to 9 more per process inside.
SANDBOX_THREADS = 128
THREADS_PER_PROCESS = 9


def release_date(version_output: str) -> Optional[int]:
    """The release date in ``runsc --version``'s first line (``0.0~20221219.0``, ``release-20240807.0``)."""
    first = version_output.splitlines()[0] if version_output else ""
    found = re.search(r"(20\d{6})", first)
    return int(found.group(1)) if found else None


def network_arguments(release: Optional[int], rmem_namespaced: bool) -> list[str]:
    """``--network=host`` where this runsc would mistake the instance's namespace for the host's."""
    misjudges = release is None or release < FIXED_RELEASE
    return [HOST_NETWORK] if misjudges and rmem_namespaced else []


def host_pids_limit(pids_limit: int, runtime: str) -> int:
    """The engine's pids limit for an instance allowed ``pids_limit`` processes: under runc the
    same; under gVisor room for the sandbox's host threads, so the client gets about what was asked."""
    return pids_limit * THREADS_PER_PROCESS + SANDBOX_THREADS if runtime == "runsc" else pids_limit


def rmem_default_namespaced() -> bool:
    """Does a fresh network namespace have its own rmem_default (Linux 6.8 and later)?"""
    probe = subprocess.run(["unshare", "--net", "test", "-e", RMEM_DEFAULT], capture_output=True, timeout=10, check=False)
    return probe.returncode == 0


@lru_cache(maxsize=1)
def read_runsc() -> Optional[dict[str, Any]]:
    """runsc's path, version and the engine arguments it needs here; None where it is not installed."""
    path = shutil.which("runsc")
    if path is None:
        return None
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    return {
        "path": path,
        "version": version.splitlines()[0] if version else "",
        "network_arguments": network_arguments(release_date(version), rmem_default_namespaced()),
    }

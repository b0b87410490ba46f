"""Metering (issue 25): every watchdog pass writes what each running instance used since the
pass before into the usage ledger (ledger.py), from the kernel's own counters (cgroups.py):
CPU time, memory, bytes read and written, and bytes in and out of its network namespace; and
GPU time from NVML's per-process samples (gpus.py, the seam where tests fake the GPU).

It rides on the watchdog's pass, which already lists every instance once (one engine call)
every 30 s as root; reading a few cgroup files and /proc/PID/net/dev per instance adds no
engine call. The network's bytes are those of the instance's own namespace, under runc and
gVisor alike (cgroups.network_bytes says how it is found). A stopped instance uses nothing
and has no cgroup: it has no row for that pass.
"""
from __future__ import annotations

import logging
from typing import Any

from .cgroups import counters, network_bytes, pids_of
from .gpus import busy_by_process
from .ledger import Ledger, Reading

DEFAULT_LEDGER_FILE = "/var/lib/dockpool/usage.db"
log = logging.getLogger("dockpool.watchdog")


def readings(entries: list[dict[str, Any]], nvml: Any = None) -> list[Reading]:
    """The running instances' counters now (``entries``: the watchdog's measure())."""
    gpu_busy = busy_by_process(nvml)  # one NVML session a pass, for every instance
    found = []
    for entry in entries:
        if entry["state"] != "running":
            continue
        counted = counters(entry["id"])
        pids = pids_of(entry["id"])
        network = network_bytes(pids) if pids else None
        if counted is None or network is None:
            continue  # it stopped meanwhile
        found.append(Reading(entry["id"], entry["owner"] or "", entry["name"], counted.generation, counted.memory_bytes,
                             cpu_ns=counted.cpu_ns, read_bytes=counted.read_bytes, write_bytes=counted.write_bytes,
                             rx_bytes=network[0], tx_bytes=network[1],
                             gpu_busy=sum(gpu_busy.get(int(pid), 0.0) for pid in pids or ()) if gpu_busy else 0.0))
    return found


def meter(ledger: Ledger, entries: list[dict[str, Any]], nvml: Any = None) -> int:
    """One metering pass: the rows written. The last readings of instances gone are dropped
    (their rows stay); rows older than a day are rolled up by hour."""
    written = ledger.record(readings(entries, nvml))
    ledger.forget(ledger.known() - {e["id"] for e in entries})
    ledger.roll_up()
    return written

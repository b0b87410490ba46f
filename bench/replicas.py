"""Replicas: a refresh against a full copy of the same instance (bytes shipped and seconds) for
10 and 100 MiB changed on an instance holding 1 GiB; the pause a refresh causes, p50 and p95,
as the provider measures it and as a clock inside the instance sees it (goal <= 100 ms at
p95); and the time from `dockpool restore` to the first SSH login against a fresh `dockpool
up` on the same provider. Two providers on separate engines, the real CLI, real ssh. The
provider reads the instance's files while it runs and freezes it only to settle what changed
meanwhile (live_delta.py).

The payload is files of 16 MiB of random bytes: a refresh ships whole files that changed
(replica_delta.py), so what changed is new files of the size given."""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import save, table

SIZE_MIB = 1024
CHANGES_MIB = (10, 100)
PAUSES = 10
TICK_S = 0.01  # the clock inside the instance: one line every 10 ms


def run(size_mib: int = SIZE_MIB, changes_mib: tuple[int, ...] = CHANGES_MIB, pauses: int = PAUSES) -> dict[str, Any]:
    import docker

    from dockpool_dev.api_config import TOKENS, remove_client_instances
    from dockpool_dev.cli import cli
    from dockpool_dev.ssh import make_keypair, ssh_run
    from dockpool_dev.two_providers import SOURCE, TARGET, two_providers

    engine = docker.from_env(timeout=600)
    alice = {"Authorization": f"Bearer {TOKENS['alice']}"}
    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-replicas-"))
    key, _ = make_keypair(work)
    home = work / "client"

    def replicate(name: str) -> tuple[dict[str, Any], float, int, int]:
        started, wall = time.perf_counter(), time.time_ns()
        answer = requests.post(f"{SOURCE}/v1/instances/{name}/replicate", headers=alice, timeout=3600)
        assert answer.status_code == 200, answer.text
        return answer.json(), time.perf_counter() - started, wall, time.time_ns()

    def first_login(*argv: str) -> tuple[dict[str, Any], float]:
        """Seconds from the CLI command to the first SSH command that ran in the instance."""
        started = time.perf_counter()
        made = cli(home, *argv, "--key", str(key), "--no-check", "--json")
        assert made.returncode == 0, made.stderr
        view = json.loads(made.stdout)
        while ssh_run(key, view["ssh"]["port"], "true", timeout=30).returncode != 0:
            assert time.perf_counter() - started < 120, f"no SSH login into {view['name']} within 120 s"
            time.sleep(0.05)
        return view, time.perf_counter() - started

    try:
        with two_providers(work, limits={"max_disk_limit": "4g"}) as (source, _target, _engine2):
            for url in (SOURCE, TARGET):
                assert cli(home, "login", url, "--token", TOKENS["alice"]).returncode == 0
            made = cli(home, "up", "--provider", SOURCE, "--key", str(key), "--memory-reservation", "128m",
                       "--disk-limit", "4g", "--no-check", "--json")
            assert made.returncode == 0, made.stderr
            view = json.loads(made.stdout)
            name, container = view["name"], engine.containers.get(view["id"])

            def write(folder: str, mib: int) -> None:  # over SSH, as its client writes
                sizes = [min(16, mib - start) for start in range(0, mib, 16)]
                done = ssh_run(key, view["ssh"]["port"], f"mkdir -p /root/{folder} && " + " && ".join(
                    f"head -c {size}M /dev/urandom > /root/{folder}/{n}" for n, size in enumerate(sizes)), timeout=600)
                assert done.returncode == 0, done.stderr
                time.sleep(1.1)  # past the files' second: the refresh takes them as they are (replica_delta.py)

            write("data", size_mib)
            full, full_s, _, _ = replicate(name)
            assert full["full"], full
            changes = []
            for mib in changes_mib:
                write(f"changed-{mib}", mib)
                delta, seconds, _, _ = replicate(name)
                assert not delta["full"], delta
                changes.append({"changed_mib": mib, "shipped_bytes": delta["shipped_bytes"], "refresh_s": seconds,
                                "full_bytes": full["shipped_bytes"], "full_s": full_s,
                                "bytes_ratio": delta["shipped_bytes"] / full["shipped_bytes"], "time_ratio": seconds / full_s})

            # The pause: a clock inside the instance writes a line every 10 ms (bounded) to memory, not disk;
            # the longest silence within each refresh is the pause its client saw.
            ticks = int((pauses * 15 + 30) / TICK_S)
            started = ssh_run(key, view["ssh"]["port"], f"nohup sh -c 'for i in $(seq 1 {ticks}); do date +%s%N; "
                              f"sleep {TICK_S}; done > /dev/shm/ticks' > /dev/null 2>&1 &")
            assert started.returncode == 0, started.stderr
            time.sleep(1)
            windows, measured = [], []
            for n in range(pauses):
                write(f"small-{n}", 1)
                answer, _, began, ended = replicate(name)
                measured.append(answer["pause_seconds"])
                windows.append((began, ended))
            stamps = [int(line) for line in container.exec_run(["cat", "/dev/shm/ticks"]).output.split()]
            seen = [max((b - a for a, b in zip(stamps, stamps[1:]) if a < end and b > begin), default=0) / 1e9
                    for begin, end in windows]

            fresh, fresh_s = first_login("up", "--provider", TARGET, "--memory-reservation", "128m")
            assert cli(home, "rm", fresh["name"]).returncode == 0
            source.kill()  # the power goes out: the API and the instance with it
            engine.api.kill(view["id"])
            deadline = time.monotonic() + 60
            while requests.get(f"{TARGET}/v1/fleet", timeout=5).json()["members"]:
                assert time.monotonic() < deadline, "the target never expired the source"
                time.sleep(0.2)
            restored, restore_s = first_login("restore", name)
            assert restored["ssh"]["host"] == "127.0.0.3", restored
    finally:
        remove_client_instances(engine)  # the source's copy, killed with it (two_providers clears the target)
        shutil.rmtree(work, ignore_errors=True)  # the replicas: more than a GiB
    pause = {"provider_p50_s": statistics.median(measured), "provider_p95_s": _p95(measured),
             "client_p50_s": statistics.median(seen), "client_p95_s": _p95(seen), "samples": len(seen)}
    return {"size_mib": size_mib, "changes": changes, "pause": pause,
            "restore": {"restore_s": restore_s, "fresh_up_s": fresh_s, "ratio": restore_s / fresh_s,
                        "image_mib": size_mib + sum(changes_mib) + pauses},
            "met": pause["client_p95_s"] <= 0.1}


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def report(result: dict[str, Any]) -> str:
    rows = [[c["changed_mib"], c["shipped_bytes"] / 1024**2, c["refresh_s"], c["full_bytes"] / 1024**2, c["full_s"],
             f"{c['bytes_ratio']:.3f}x", f"{c['time_ratio']:.2f}x"] for c in result["changes"]]
    pause, restore = result["pause"], result["restore"]
    return (f"an instance holding {result['size_mib']} MiB of random bytes in files of 16 MiB\n"
            + table(rows, ["MiB changed", "refresh MiB shipped", "refresh s", "full copy MiB", "full copy s",
                           "bytes ratio", "time ratio"])
            + f"\npause of a refresh over {pause['samples']} refreshes: p50 {pause['provider_p50_s']:.3f} s, "
              f"p95 {pause['provider_p95_s']:.3f} s as the provider measures it; p50 {pause['client_p50_s']:.3f} s, "
              f"p95 {pause['client_p95_s']:.3f} s as a clock inside the instance saw it"
            + f"\ngoal: pause <= 100 ms at p95: {'met' if result['met'] else 'NOT met'}"
            + f"\nrestore to the first SSH login: {restore['restore_s']:.2f} s ({restore['image_mib']} MiB) against a "
              f"fresh `dockpool up` {restore['fresh_up_s']:.2f} s ({restore['ratio']:.1f}x)")


def chart(result: dict[str, Any], path: Path) -> None:
    from bench.charts import line_chart

    changed = [c["changed_mib"] for c in result["changes"]]
    line_chart(path, f"A replica's refresh on an instance of {result['size_mib']} MiB", "MiB changed", "MiB shipped",
               {"refresh (what changed)": (changed, [c["shipped_bytes"] / 1024**2 for c in result["changes"]]),
                "full copy": (changed, [c["full_bytes"] / 1024**2 for c in result["changes"]])})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=SIZE_MIB)
    parser.add_argument("--pauses", type=int, default=PAUSES)
    args = parser.parse_args()
    result = run(args.size_mib, CHANGES_MIB, args.pauses)
    save("replicas", result)
    print(report(result))


if __name__ == "__main__":
    main()

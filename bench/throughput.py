"""Requests per second and p99 of /server_info, /v1/specs and /healthz at 1, 8 and 32
concurrent users (locust, headless), against a bare Bottle route on the same WSGI
server in the same run; /v1/specs again over HTTPS through the provider's nginx front
(the provider_api role's template); and the API's resident memory idle and after the load.
Goals: /v1/specs >= 0.5 x bare requests/s, p99 < 20 ms at 32 concurrent; HTTPS reported
as a ratio to plain HTTP (no goal was set: TLS costs what it costs on 2 cores)."""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, save, table

ROUTES = ("bare", "/server_info", "/v1/specs", "/healthz")
LEVELS = (1, 8, 32)
THREADS = 8


def locust(url: str, path: str, users: int, seconds: int, work: Path) -> dict[str, float]:
    prefix = work / f"locust-{path.strip('/').replace('/', '_') or 'root'}-{users}"
    env = dict(os.environ, BENCH_PATH=path)
    subprocess.run([str(Path(sys.executable).parent / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
                    "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", url, "--csv", str(prefix),
                    "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "2"],
                   env=env, check=True, capture_output=True, timeout=seconds + 60)
    with open(f"{prefix}_stats.csv", encoding="utf-8") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    number = lambda text: float(text) if text not in ("", "N/A") else float("nan")  # noqa: E731  # too few samples
    return {"rps": number(row["Requests/s"]), "p50_ms": number(row["50%"]), "p99_ms": number(row["99%"]),
            "requests": int(row["Request Count"]), "failures": int(row["Failure Count"])}


def rss_mib(pid: int) -> float:
    import psutil

    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def run(levels: tuple[int, ...] = LEVELS, seconds: int = 10) -> dict[str, Any]:
    import psutil

    from dockpool_dev.api_config import make_config
    from dockpool_dev.api_process import api_process, free_port
    from dockpool_dev.tls_front import tls_front

    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-"))
    port = free_port()
    bare = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_app.py"), str(port), str(THREADS)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, Any] = {"levels": list(levels), "seconds": seconds, "routes": {}}
    try:
        bare_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                import requests

                requests.get(bare_url, timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        with api_process(work, make_config(work, threads=THREADS)) as url:
            api_pid = next(p.pid for p in psutil.Process().children(recursive=True) if "dockpool_api" in " ".join(p.cmdline()))
            results["memory_mib"] = {"idle": rss_mib(api_pid)}
            for route in ROUTES:
                results["routes"][route] = {
                    str(users): locust(bare_url if route == "bare" else url, "/" if route == "bare" else route, users, seconds, work)
                    for users in levels
                }
            api_port = int(url.rsplit(":", 1)[1])
            with tls_front(work / "front", api_port) as front:  # new connections per user, kept alive after
                results["routes"]["https /v1/specs"] = {
                    str(users): locust(front.url, "/v1/specs", users, seconds, work) for users in levels
                }
            results["memory_mib"]["after_load"] = rss_mib(api_pid)
    finally:
        bare.terminate()
        bare.wait(timeout=10)
    top = str(max(levels))
    specs, reference = results["routes"]["/v1/specs"][top], results["routes"]["bare"][top]
    results["ratio_specs_rps"] = specs["rps"] / reference["rps"] if reference["rps"] else 0.0
    results["p99_specs_ms_at_top"] = specs["p99_ms"]
    results["met"] = results["ratio_specs_rps"] >= 0.5 and specs["p99_ms"] < 20
    https = results["routes"]["https /v1/specs"][top]
    results["ratio_https_specs_rps"] = https["rps"] / specs["rps"] if specs["rps"] else 0.0
    return results


def report(result: dict[str, Any]) -> str:
    rows = [[route, users, r["rps"], r["p50_ms"], r["p99_ms"], r["failures"]]
            for route, by_level in result["routes"].items() for users, r in by_level.items()]
    return (table(rows, ["route", "users", "req/s", "p50 ms", "p99 ms", "failures"])
            + f"\n/v1/specs req/s / bare = {result['ratio_specs_rps']:.2f} (goal >= 0.5), "
            f"p99 at {max(result['levels'])} users = {result['p99_specs_ms_at_top']:.0f} ms (goal < 20): "
            f"{'met' if result['met'] else 'NOT met'}"
            f"\n/v1/specs over HTTPS (nginx front) / plain HTTP at {max(result['levels'])} users = "
            f"{result['ratio_https_specs_rps']:.2f}"
            f"\nAPI resident memory: {result['memory_mib']['idle']} MiB idle, {result['memory_mib']['after_load']} MiB after the load")


def chart(result: dict[str, Any], path: Path) -> None:
    from bench.charts import line_chart

    levels = result["levels"]
    line_chart(path, "API requests per second (locust, same WSGI server)", "concurrent users", "requests/s",
               {route: (levels, [result["routes"][route][str(u)]["rps"] for u in levels]) for route in result["routes"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    result = run(seconds=parser.parse_args().seconds)
    save("throughput", result)
    print(report(result))


if __name__ == "__main__":
    main()

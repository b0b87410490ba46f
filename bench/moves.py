"""Moving an instance between two providers on separate engines (this machine's and a
second one): seconds per GiB moved, against ``docker save | docker load`` of the instance's
snapshot (``docker commit``, taken before the move and not timed) between the same two
engines, and the downtime the client sees (from the source stopping the instance to the
target's answering SSH). Goal: <= 1.3x the pipe.

The providers talk over the fleet's mutual TLS; what that costs is measured in the same
run: seconds per GiB streamed through the fleet's listener (fleet/tls.py) against the same
server and client without TLS, on loopback."""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import requests

from bench.common import save, table

PAYLOADS_MIB = (256, 1024)
REPEATS = 2
GIB = 1024**3


def run(payloads_mib: tuple[int, ...] = PAYLOADS_MIB, repeats: int = REPEATS) -> dict[str, Any]:
    import docker

    from dockpool.snapshots import MOVE_LABEL
    from dockpool_dev import second_engine
    from dockpool_dev.api_config import TOKENS
    from dockpool_dev.ssh import make_keypair
    from dockpool_dev.two_providers import SOURCE, TARGET, two_providers

    engine, auth = docker.from_env(timeout=600), {"Authorization": f"Bearer {TOKENS['alice']}"}
    rows = []
    work = Path(tempfile.mkdtemp(prefix="dockpool-bench-moves-"))
    _, public_key = make_keypair(work)
    with two_providers(work) as (_source, _target, engine2):
        for mib in payloads_mib:
            for attempt in range(repeats):
                created = requests.post(f"{SOURCE}/v1/instances", headers=auth, timeout=180,
                                        json={"public_key": public_key, "memory_reservation": "128m", "disk_limit": "2g"})
                assert created.status_code == 201, created.text
                made = created.json()
                container = engine.containers.get(made["id"])
                # Random bytes: what a client's work looks like to the compressors that do not exist here.
                container.exec_run(["dd", "if=/dev/urandom", "of=/root/payload", "bs=1M", f"count={mib}"])
                # The reference's snapshot, as `docker commit` makes it (the image with the client's layer on
                # top): what an operator would save and load by hand. Taken before the move, which makes none.
                ref = f"dockpool-bench/reference:{mib}-{attempt}"
                engine.api.commit(container.id, repository=ref.split(":")[0], tag=ref.split(":")[1], pause=True)
                offer = requests.post(f"{TARGET}/v1/moves", headers=auth, timeout=60,
                                      json={"image": "debian-sshd", "public_key": public_key, "memory_reservation": "128m",
                                            "disk_limit": "2g", "source": "source"}).json()
                assert "grant" in offer, offer
                os.sync()  # both timings start with the payload and the commit on disk, not in the page cache
                started = time.perf_counter()
                moved = requests.post(f"{SOURCE}/v1/instances/{made['name']}/move", headers=auth, timeout=3600,
                                      json={"target": offer["provider"], "move": offer["id"], "grant": offer["grant"]})
                seconds = time.perf_counter() - started
                moved.raise_for_status()
                instance = moved.json()["instance"]
                snapshot = engine2.images.list(filters={"label": MOVE_LABEL})[0]
                size = int(engine.images.get(ref).attrs["Size"])  # the committed snapshot's, as before moves exported
                # The reference: the committed snapshot, saved here and loaded there, by the docker CLI's pipe.
                engine2.containers.get(instance["id"]).remove(force=True)
                engine2.images.remove(snapshot.id, force=True)
                os.sync()
                pipe_started = time.perf_counter()
                with subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE) as saving:
                    subprocess.run(["docker", "-H", second_engine.HOST, "load", "-q"], stdin=saving.stdout, check=True,
                                   capture_output=True, timeout=3600)
                if saving.returncode != 0:
                    raise RuntimeError(f"docker save {ref} exited {saving.returncode}")
                pipe = time.perf_counter() - pipe_started
                for client in (engine, engine2):
                    client.images.remove(ref, force=True)  # the base layers stay: they are the provider's image
                rows.append({"payload_mib": mib, "attempt": attempt, "image_bytes": size, "move_s": seconds,
                             "pipe_s": pipe, "move_s_per_gib": seconds / (size / GIB), "pipe_s_per_gib": pipe / (size / GIB)})
    by_size = []
    for mib in payloads_mib:
        mine = [r for r in rows if r["payload_mib"] == mib]
        move = statistics.median(r["move_s"] for r in mine)
        pipe = statistics.median(r["pipe_s"] for r in mine)
        size = statistics.median(r["image_bytes"] for r in mine)
        by_size.append({"payload_mib": mib, "image_gib": size / GIB, "move_s": move, "pipe_s": pipe,
                        "move_s_per_gib": move / (size / GIB), "pipe_s_per_gib": pipe / (size / GIB),
                        "ratio": move / pipe, "downtime_s": move})
    tls = tls_cost(work, max(payloads_mib))
    return {"sizes": by_size, "runs": rows, "tls": tls, "met": all(r["ratio"] <= 1.3 for r in by_size)}


def tls_cost(work: Path, mib: int) -> dict[str, Any]:
    """Seconds per GiB through the fleet's listener and its client, with and without TLS."""
    from dockpool_api.fleet import tls as fleet_tls
    from dockpool_api.fleet import transport
    from dockpool_dev import devca

    chunk = bytes(1024 * 1024)

    def app(environ: dict, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (chunk for _ in range(mib))

    ca = devca.make_ca(work / "tls-ca")
    tls = fleet_tls.FleetTLS(*map(str, devca.issue(ca, work / "tls", "bench", ["127.0.0.1"])), str(ca[0]))
    secure = fleet_tls.serve(app, "127.0.0.1", 0, tls)
    plain = type("Plain", (ThreadingMixIn, WSGIServer), {"daemon_threads": True})(
        ("127.0.0.1", 0), type("Quiet", (WSGIRequestHandler,), {"log_message": lambda *_: None}))
    plain.set_app(app)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    seconds = {}
    try:
        for name in ("plain", "tls"):
            best = float("inf")
            for _ in range(2):
                started = time.perf_counter()
                if name == "tls":
                    answer = transport.HttpTransport(tls.client_context()).open(
                        transport.Endpoint("127.0.0.1", secure.server_address[1], "bench"),
                        transport.Call("GET", transport.route_path("stream"), deadline=600, most=mib * 1024 * 1024))
                else:
                    connection = http.client.HTTPConnection("127.0.0.1", plain.server_address[1], timeout=60)
                    connection.request("GET", "/stream")
                    answer = connection.getresponse()
                while answer.read(1024 * 1024):
                    pass
                answer.close()
                best = min(best, time.perf_counter() - started)
            seconds[name] = best
    finally:
        secure.shutdown()
        plain.shutdown()
    gib = mib / 1024
    return {"mib": mib, "plain_s_per_gib": seconds["plain"] / gib, "tls_s_per_gib": seconds["tls"] / gib,
            "tls_extra_s_per_gib": (seconds["tls"] - seconds["plain"]) / gib}


def report(result: dict[str, Any]) -> str:
    rows = [[r["payload_mib"], r["image_gib"], r["move_s"], r["pipe_s"], r["move_s_per_gib"], r["pipe_s_per_gib"],
             f"{r['ratio']:.2f}x", r["downtime_s"]] for r in result["sizes"]]
    tls = result.get("tls")  # results saved before the fleet's TLS have none
    return (table(rows, ["payload MiB", "image GiB", "move s", "save|load s", "move s/GiB", "save|load s/GiB",
                         "ratio", "downtime s"])
            + f"\ngoal <= 1.3x docker save | docker load: {'met' if result['met'] else 'NOT met'}"
            + (f"\nthe fleet's TLS, {tls['mib']} MiB on loopback through its listener: {tls['tls_s_per_gib']:.2f} s/GiB "
               f"against {tls['plain_s_per_gib']:.2f} without TLS (+{tls['tls_extra_s_per_gib']:.2f} s/GiB)" if tls else ""))


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    result = run()
    save("moves", result)
    print(report(result))
    print(json.dumps(result["runs"], indent=1))


if __name__ == "__main__":
    main()

"""Bytes through a relay against the direct path, on the same namespaces (issue 33).

The lab of tests/support/nat.py: a provider behind a MASQUERADE router, a relay (the relay
role's sshd_config) and a client. The same server behind the NAT is read by the client
- through the relay: the tunnel role's autossh `ssh -R`, the bytes inside SSH;
- directly: a port forward on the router (DNAT), what an operator sets by hand today.
The two alternate, so drift hits both alike. Goal: relay >= 0.8x direct.

    sudo .venv/bin/python -m bench.relay [--mib 256] [--n 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from bench.common import save, table

DIRECT_PORT = 18444
PORT = 8444  # the server stands where the fleet's port would be: the tunnel forwards it
BASE = 41000

SERVER = """
import socket, sys, threading
size = int(sys.argv[1])
chunk = memoryview(bytes(1 << 20))
listener = socket.create_server(("0.0.0.0", %d), backlog=16)
def serve(conn):
    with conn:
        left = size
        while left > 0:
            left -= conn.send(chunk[:min(left, len(chunk))])
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
""" % PORT

READER = """
import socket, sys, time
address, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start = time.perf_counter()
sock = socket.create_connection((address, port), timeout=30)
got, buffer = 0, bytearray(1 << 20)
while got < size:
    n = sock.recv_into(buffer)
    if not n:
        break
    got += n
elapsed = time.perf_counter() - start
print(got, elapsed)
"""


def run(mib: int = 256, n: int = 5) -> dict[str, Any]:
    from tests.support import nat
    from tests.support.waiting import until

    size = mib * 2**20
    speeds: dict[str, list[float]] = {"relay": [], "direct": []}
    with nat.locked_account("dpnat-bench") as user, nat.root_only_directory() as directory, nat.nat_lab() as lab:
        tunnel_dir = directory / "tunnel"
        tunnel_dir.mkdir()
        nat.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tunnel_dir / "id_ed25519")])
        tunnels = [{"name": "nat-box", "public_key": nat.public_key(tunnel_dir / "id_ed25519"),
                    "ports": [BASE, BASE + 1, BASE + 2]}]
        relay = nat.start_relay(lab, nat.render_relay(directory / "relay", user, 2222, tunnels))
        script = directory / "server.py"
        script.write_text(SERVER)
        lab.start(lab.nat, [sys.executable, str(script), str(size)], directory / "server.log")
        until(lambda: lab.connects(lab.nat, "127.0.0.1", PORT, 1), 20, "the bench server listening")
        argv, env, _ = nat.tunnel_command(tunnel_dir, relay, BASE, lab.nat_address)
        lab.start(lab.nat, argv, directory / "tunnel.log", env)
        until(lambda: lab.connects(lab.client, lab.relay_client_address, BASE + 2, 1), 30, "the tunnel up")
        # The direct path: a port forward by hand on the router (bench only; the tests prove there is none).
        lab.run(lab.router, ["iptables", "-t", "nat", "-A", "PREROUTING", "-i", "rout0", "-p", "tcp", "--dport",
                             str(DIRECT_PORT), "-j", "DNAT", "--to-destination", f"{lab.nat_address}:{PORT}"])
        lab.run(lab.router, ["iptables", "-I", "FORWARD", "-i", "rout0", "-o", "rin0", "-p", "tcp", "--dport", str(PORT),
                             "-d", lab.nat_address, "-j", "ACCEPT"])
        lab.run(lab.router, ["ip", "route", "add", f"10.{lab.net}.3.0/24", "via", lab.relay_address])  # replies to the client
        paths = {"relay": (lab.relay_client_address, BASE + 2), "direct": (lab.router_outside, DIRECT_PORT)}
        for _ in range(n):  # bounded; alternating
            for name, (address, port) in paths.items():
                out = lab.run(lab.client, [sys.executable, "-c", READER, address, str(port), str(size)], timeout=300)
                got, elapsed = out.stdout.split()
                if int(got) != size:
                    raise RuntimeError(f"{name}: read {got} of {size} bytes")
                speeds[name].append(size / float(elapsed) / 1e6)
    relay_mb, direct_mb = statistics.median(speeds["relay"]), statistics.median(speeds["direct"])
    result = {"mib": mib, "n": n, "speeds_mb_s": speeds, "relay_mb_s": relay_mb, "direct_mb_s": direct_mb,
              "ratio": relay_mb / direct_mb, "goal": ">= 0.8x direct"}
    save("relay", result)
    print(table([["bytes through the relay (MB/s, p50)", relay_mb, direct_mb, f"{relay_mb / direct_mb:.2f}x",
                  "met" if relay_mb / direct_mb >= 0.8 else "NOT met"]],
                ["what", "relay", "direct (router port forward)", "ratio", "goal >= 0.8x"]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--n", type=int, default=5)
    args = parser.parse_args()
    run(args.mib, args.n)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Make sure a Docker engine answers. Machines without systemd as PID 1 (CI, this
# project's dev machines) get dockerd started in the background, detached.
set -euo pipefail

if docker info >/dev/null 2>&1; then
    exit 0
fi
# A machine restored without its processes keeps /run: a pid file naming a pid now
# reused by another program makes dockerd wait for "its" containerd until it gives up.
clear_stale() { # PIDFILE PROGRAM
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || rm -f "$1"
}
clear_stale /var/run/docker.pid dockerd
clear_stale /run/docker/containerd/containerd.pid containerd
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl start docker
else
    setsid dockerd >/var/log/dockerd.log 2>&1 </dev/null &
fi
for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && exit 0
    sleep 1
done
echo "dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
tail -n 20 /var/log/dockerd.log >&2 || true
exit 1

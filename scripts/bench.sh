#!/usr/bin/env bash
# Run every benchmark (about half an hour) on this machine's engine and loopback:
#   scripts/bench.sh [--smoke] [--only NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
command -v nginx >/dev/null || {  # the reference for the speed-test benchmark
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq nginx >/dev/null; else sudo apt-get install -y -qq nginx >/dev/null; fi
}
exec .venv/bin/python -m bench "$@"

#!/usr/bin/env bash
# Set up a fresh Debian 12 / Ubuntu machine for dockpool. Safe to re-run: every
# step skips what is already done.
#   scripts/setup.sh          development and tests: everything below
#   scripts/setup.sh sandbox  only what the sandbox needs (make sandbox): no
#                             browser, no nginx, no test or benchmark tools, no
#                             instance images on this machine's engine (the
#                             sandbox provider builds its own); the developers'
#                             tools (devtools/: the local fleet) are in both
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-dev}
case "$mode" in dev | sandbox) ;; *) echo "usage: $0 [dev|sandbox]" >&2; exit 2 ;; esac

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(docker.io mmdebstrap openssh-client python3-venv git make curl)
# The tests' HTTPS front (the role's nginx template), the status page's browser tests, and
# gVisor for the tests and benchmarks that run instances under both runtimes, and promtool
# (Debian's prometheus package) for the suite's `promtool check metrics` on the served /metrics.
[ "$mode" = dev ] && packages+=(nginx chromium runsc prometheus)
# The NAT tests (tests/integration/test_nat.py): a relay sshd in a network namespace, the
# tunnel's autossh, and tcpdump on the relay.
[ "$mode" = dev ] && packages+=(openssh-server autossh tcpdump)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

as_root scripts/start-docker.sh

# The local base image (mmdebstrap: network and disk) builds while the virtual
# environment installs (PyPI and CPU): the two longest steps of a first setup.
base_log=$(mktemp)
as_root scripts/build-base-image.sh >"$base_log" 2>&1 &
base_pid=$!
trap 'kill "$base_pid" 2>/dev/null; rm -f "$base_log"' EXIT

# The virtual environment is brought up to date only when the pinned requirements
# change. A development environment (requirements-dev.txt includes requirements.txt)
# serves the sandbox too.
requirements=requirements.txt
[ "$mode" = dev ] && requirements=requirements-dev.txt
digest() { cat "$1" requirements.txt pyproject.toml provider/pyproject.toml devtools/pyproject.toml | sha256sum | cut -d' ' -f1; }
stamp=.venv/.requirements.sha256
have=$(cat "$stamp" 2>/dev/null || true)
if [ ! -x .venv/bin/python ] || { [ "$have" != "$(digest "$requirements")" ] && [ "$have" != "$(digest requirements-dev.txt)" ]; }; then
    echo "installing $requirements into .venv"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    # Bytecode is compiled on first import instead (halves the install: most of the bundle's files are never imported).
    .venv/bin/pip install -q --no-compile -r "$requirements"
    digest "$requirements" >"$stamp"
    requirements_changed=yes
fi
# The three distributions, editable (they follow this checkout): the client (the core and the
# `dockpool` command), the provider's service, and the developers' tools (a test CA, the README's
# local fleet), in both modes: the README's commands work after either. This is how tests,
# benchmarks and scripts import the packages; nothing patches sys.path or PYTHONPATH for them.
# Also when one is missing: a venv from an earlier sandbox setup had no developers' tools.
if [ "${requirements_changed:-}" = yes ] || ! .venv/bin/python -c 'import dockpool, dockpool_api, dockpool_dev' 2>/dev/null; then
    .venv/bin/pip install -q --no-deps -e . -e ./provider -e ./devtools
fi

wait "$base_pid" || { cat "$base_log"; exit 1; }
cat "$base_log"
trap - EXIT
rm -f "$base_log"
# The instance images on this machine's engine, for the tests, and gVisor registered with it.
if [ "$mode" = dev ]; then
    .venv/bin/ansible-playbook playbooks/images.yml >/dev/null
    as_root .venv/bin/python scripts/host-runsc.py
fi
echo "setup done: Docker $(docker version --format '{{.Server.Version}}'), $(.venv/bin/ansible --version | head -1)"

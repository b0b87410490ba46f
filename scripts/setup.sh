#!/usr/bin/env bash
# Set up a fresh Debian 12 / Ubuntu machine for dockpool development, tests and
# the sandbox: system packages, a running Docker engine, the Python virtual
# environment, the local base image and the instance images. Safe to re-run:
# every step skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(docker.io debootstrap openssh-client python3-venv git make curl nginx chromium)
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

# The virtual environment is rebuilt only when the pinned requirements change.
stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "creating the virtual environment .venv"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r requirements-dev.txt
    # The `dockpool` client command, as a client installs it (editable: it follows this checkout).
    .venv/bin/pip install -q --no-deps -e .
    echo "$wanted" >"$stamp"
fi

as_root scripts/build-base-image.sh
.venv/bin/ansible-playbook playbooks/images.yml >/dev/null
echo "setup done: Docker $(docker version --format '{{.Server.Version}}'), $(.venv/bin/ansible --version | head -1)"

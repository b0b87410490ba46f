#!/usr/bin/env bash
# Set up this machine, then run the main job on a local sandbox provider.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh sandbox
exec .venv/bin/ansible-playbook playbooks/sandbox.yml "$@"

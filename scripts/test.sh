#!/usr/bin/env bash
# The whole test suite: lint, unit tests, then integration tests on the real engine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== lint"
yamllint --strict .
ansible-lint --profile production
echo "== tests"
pytest "$@"

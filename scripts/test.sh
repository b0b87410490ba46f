#!/usr/bin/env bash
# The whole test suite: lint, unit and integration tests on the real engine,
# then the molecule scenarios (every role, and provision.yml end to end).
#   scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== lint"
yamllint --strict .
ansible-lint --profile production
ruff check .
mypy  # the core and the fleet package ([tool.mypy] in pyproject.toml)
echo "== ansible-test sanity (the modules and their module_utils as a collection)"
mkdir -p .cache
scripts/sanity.sh >.cache/sanity.log 2>&1 || { tail -n 60 .cache/sanity.log; exit 1; }
grep '^Running sanity test' .cache/sanity.log
echo "== unit and integration tests"
pytest "$@"
echo "== molecule scenarios"
scripts/molecule.sh

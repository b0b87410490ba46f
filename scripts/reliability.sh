#!/usr/bin/env bash
# The reliability and security suite at full size (about five minutes): more fuzzed
# cases than CI runs, 50 concurrent creations, every fault and attack; writes the
# figures to docs/reliability.json (quoted in docs/security.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export DOCKPOOL_FUZZ_EXAMPLES=${DOCKPOOL_FUZZ_EXAMPLES:-60} DOCKPOOL_CONCURRENT=${DOCKPOOL_CONCURRENT:-50}
export DOCKPOOL_RELIABILITY_REPORT="$PWD/docs/reliability.json"
exec .venv/bin/pytest tests/reliability -v -p no:cacheprovider "$@"

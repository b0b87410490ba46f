#!/usr/bin/env bash
# Run molecule scenarios, two at a time (each on its own host container), with
# one log per scenario under .cache/molecule/. Without arguments: every role's
# scenario, then the end-to-end `provision` scenario.
#   scripts/molecule.sh [sshd images ... provision]
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
logs=.cache/molecule
mkdir -p "$logs"

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
    scenarios=(provision $(ls -d roles/*/molecule/default | cut -d/ -f2))
fi

run() {  # run NAME: one scenario, its log in .cache/molecule/NAME.log, its result in .cache/molecule/results
    local name=$1 start=$SECONDS rc
    if [ "$name" = provision ]; then
        (cd tests/e2e && molecule test -s provision) >"$logs/$name.log" 2>&1
    else
        (cd "roles/$name" && MOLECULE_PLATFORM_NAME="dockpool-molecule-${name//_/-}" molecule test) >"$logs/$name.log" 2>&1
    fi
    rc=$?
    printf '%-14s %s in %ss\n' "$name" "$([ $rc -eq 0 ] && echo passed || echo FAILED)" $((SECONDS - start)) | tee -a "$logs/results"
}

: >"$logs/results"
for name in "${scenarios[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do
        sleep 1
    done
    run "$name" &
done
wait
if grep -q FAILED "$logs/results"; then
    echo "molecule: a scenario failed; its log is in $logs/" >&2
    for name in $(grep FAILED "$logs/results" | cut -d' ' -f1); do
        echo "== $logs/$name.log" >&2
        grep -E "fatal:|CRITICAL|FAILED!|Assertion failed|msg:" "$logs/$name.log" | head -n 20 >&2
    done
    exit 1
fi

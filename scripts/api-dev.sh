#!/usr/bin/env bash
# Run the provider API locally for development, against this machine's Docker
# engine, on http://127.0.0.1:8089 (the sandbox has 8088). Instances publish on
# 127.0.0.1:44000-44099. Prints a development token; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
dir=.cache/api-dev
mkdir -p "$dir"
chmod 700 "$dir"
[ -s "$dir/token" ] || .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(30))" >"$dir/token"
token=$(cat "$dir/token")
hash=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
cat >"$dir/provider.json" <<JSON
{"port_range": "44000-44099", "bind_address": "127.0.0.1", "public_address": "127.0.0.1", "shared_cores_min": 0}
JSON
cat >"$dir/api.json" <<JSON
{"listen": "127.0.0.1", "port": 8089, "provider_name": "dev",
 "clients": [{"name": "dev", "token_sha256": "$hash", "admin": true}],
 "policy_file": "$PWD/$dir/provider.json", "usage_file": "$PWD/$dir/usage.json", "peers_file": "$PWD/$dir/peers.json"}
JSON
echo "dockpool API on http://127.0.0.1:8089 -- token: $token"
echo "  curl -H 'Authorization: Bearer $token' http://127.0.0.1:8089/v1/instances"
exec .venv/bin/python -m dockpool_api --config "$dir/api.json"

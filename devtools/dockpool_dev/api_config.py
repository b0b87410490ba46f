"""The settings a test's API service runs with: three clients (alice, bob, and the
admin ops) with known tokens, a policy on its own port range, files in the test's folder."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from dockpool_api.auth import hash_token

TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789", "ops": "ops-token-0123456789"}


# The test provider's limits (provider.json's, the one source); a test's ``limits`` go over them.
LIMITS = {"default_memory": "128m", "max_memory": "256m", "max_disk_limit": "2g", "default_disk_limit": "1g",
          "max_cpus": 1, "max_extra_ports": 2, "instances_per_client": 2}


def make_config(tmp_path, limits: Optional[dict] = None, **overrides) -> dict:
    """api.json's settings; provider.json (with the limits) is written beside it."""
    policy = tmp_path / "provider.json"
    policy.write_text(json.dumps({"port_range": "43000-43999", "bind_address": "127.0.0.1", "shared_cores_min": 0,
                                  "limits": {**LIMITS, **(limits or {})}}))
    settings = {
        "provider_name": "testprov",
        "policy_file": str(policy),
        "usage_file": str(tmp_path / "usage.json"),
        "ledger_file": str(tmp_path / "usage.db"),
        "peers_file": str(tmp_path / "peers.json"),
        "drain_file": str(tmp_path / "drain.json"),
        "moves_file": str(tmp_path / "moves.json"),
        "replicas_dir": str(tmp_path / "replicas"),
        "clients": [{"name": n, "token_sha256": hash_token(t), "admin": n == "ops"} for n, t in TOKENS.items()],
        "base_images": ["debian:bookworm-slim"],
        "max_upload_bytes": 1024 * 1024,
    }
    settings.update(overrides)
    return settings


def update_policy(path, defaults: Optional[dict] = None, limits: Optional[dict] = None, **values) -> None:
    """Rewrite a test provider's provider.json: ``defaults`` where it says nothing, ``values`` over it
    (the public address, as dockpool_core writes it), ``limits`` over its limits."""
    policy = Path(path)
    current = json.loads(policy.read_text())
    if limits:
        values["limits"] = {**current.get("limits", {}), **limits}
    policy.write_text(json.dumps({**(defaults or {}), **current, **values}))


def remove_client_instances(engine) -> None:
    """Remove every instance of the test clients above, by owner label."""
    for c in engine.containers.list(all=True, filters={"label": "dockpool.owner"}):
        if c.labels.get("dockpool.owner") in TOKENS:
            c.remove(force=True)

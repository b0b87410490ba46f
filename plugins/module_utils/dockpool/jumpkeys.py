"""Keys of the provider's jump account, read live from the instances' labels.

sshd runs ``python -m dockpool.jumpkeys %u`` as its AuthorizedKeysCommand for the
jump user: each client key may open TCP forwards to its own instances' published
ports and nothing else, and an instance's removal revokes its access at once.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Iterable, Optional

from . import labels as L
from .engine import connect
from .errors import DockpoolError, InvalidInput
from .instances import InstanceManager
from .policy import DEFAULT_POLICY_FILE, load_policy
from .validation import key_material, validate_public_key


def _destination(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def jump_key_lines(records: Iterable[L.Record], target_host: str) -> list[str]:
    """authorized_keys lines: one per key material (sshd uses only the first line a key
    matches), allowing the ports of that key owner's instances that carry the key."""
    records = list(records)
    owners = L.key_owners(records)
    destinations: dict[str, list[str]] = {}
    names: dict[str, list[str]] = {}
    for record in records:
        key = record.labels.get(L.PUBLIC_KEY)
        if not record.managed or not key:
            continue
        try:
            material = key_material(validate_public_key(key))
        except InvalidInput:
            continue
        if owners[material] != record.labels.get(L.OWNER, ""):
            continue  # another client's copy of this key opens nothing
        ports = [_destination(target_host, p.host_port) for p in L.published_ports(record.labels) if p.protocol == "tcp"]
        if not ports:
            continue
        destinations.setdefault(material, []).extend(ports)
        names.setdefault(material, []).append(record.labels.get(L.NAME, record.name))
    lines = []
    for material, ports in destinations.items():
        options = ",".join(["restrict", "port-forwarding"] + [f'permitopen="{d}"' for d in sorted(set(ports))])
        lines.append(f"{options} {material} dockpool:{','.join(sorted(names[material]))}")
    return lines


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dockpool-jump-keys", description=__doc__)
    parser.add_argument("user", help="the user sshd asks about (%%u)")
    parser.add_argument("--jump-user", default="iaas-client")
    parser.add_argument("--policy-file", default=DEFAULT_POLICY_FILE)
    args = parser.parse_args(argv)
    if args.user != args.jump_user:
        return 0
    try:
        policy = load_policy(args.policy_file)
        records = InstanceManager(connect(timeout=10), policy).records()
    except (DockpoolError, OSError) as exc:
        print(f"dockpool-jump-keys: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    for line in jump_key_lines(records, policy.probe_host):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

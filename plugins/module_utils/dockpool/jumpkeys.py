"""``dockpool-jump-keys``: the jump account's key list, from the instances' labels.

sshd reads the list the core keeps in ``jump_keys_file`` (see jumpaccess.py). This
command prints the list for the jump user from the live labels (``USER`` is sshd's
%u; other users get nothing), and with ``--write`` rewrites the file, as the API
does at start and the disk watchdog on every pass, so that a container removed
behind dockpool's back loses its access within a pass.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from .engine import connect
from .errors import DockpoolError
from .instances import InstanceManager
from .jumpaccess import jump_key_lines
from .policy import DEFAULT_POLICY_FILE, load_policy


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dockpool-jump-keys", description=__doc__)
    parser.add_argument("user", nargs="?", help="print the keys of this user (sshd's %%u)")
    parser.add_argument("--jump-user", default="iaas-client")
    parser.add_argument("--policy-file", default=DEFAULT_POLICY_FILE)
    parser.add_argument("--write", action="store_true", help="rewrite the policy's jump_keys_file")
    args = parser.parse_args(argv)
    if args.user is not None and args.user != args.jump_user and not args.write:
        return 0
    try:
        policy = load_policy(args.policy_file)
        manager = InstanceManager(connect(timeout=10), policy)
        if args.write:
            manager.refresh_jump_keys()
        if args.user == args.jump_user:
            # sshd's AuthorizedKeysCommand reads the keys from this program's standard output.
            for line in jump_key_lines(manager.records(), policy.probe_host):
                print(line)  # pylint: disable=ansible-bad-function
    except (DockpoolError, OSError) as exc:
        print(f"dockpool-jump-keys: {getattr(exc, 'message', exc)}", file=sys.stderr)  # pylint: disable=ansible-bad-function
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pylint: disable=ansible-bad-function  # a program (python -m), not module code

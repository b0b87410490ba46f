"""The disk watchdog's entry point, run by cron every 30 seconds:
``python -m dockpool.watchdog [--usage-file F] [--policy-file F]``. Each pass also
rewrites the jump account's key list, so that a container removed behind
dockpool's back loses its jump access within a pass."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

from .engine import connect
from .errors import DockpoolError
from .instances import InstanceManager
from .locking import file_lock
from .policy import DEFAULT_POLICY_FILE, load_policy
from .usage import DEFAULT_USAGE_FILE, log, run_pass

LOCK_FILE = "/run/lock/dockpool-watchdog.lock"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dockpool-watchdog", description=__doc__)
    parser.add_argument("--usage-file", default=DEFAULT_USAGE_FILE)
    parser.add_argument("--lock-file", default=LOCK_FILE)
    parser.add_argument("--docker-host", default=None)
    parser.add_argument("--policy-file", default=DEFAULT_POLICY_FILE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dockpool-watchdog[%(process)d] %(levelname)s %(message)s")
    with file_lock(args.lock_file, wait=False) as held:
        if not held:
            log.info("a previous pass is still running; skipping this one")
            return 0
        try:
            client = connect(args.docker_host, timeout=60)
            run_pass(client, args.usage_file)
            InstanceManager(client, load_policy(args.policy_file)).refresh_jump_keys()
        except DockpoolError as exc:
            log.error("%s", exc.message)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pylint: disable=ansible-bad-function  # a program (python -m), not module code

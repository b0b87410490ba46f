"""The disk watchdog's entry point, run by cron every 30 seconds:
``python -m dockpool.watchdog [--usage-file F] [--policy-file F] [--ledger-file F]``. Each
pass also rewrites the jump account's key list, so that a container removed behind
dockpool's back loses its jump access within a pass, and meters what every instance used
into the usage ledger (metering.py)."""
from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from typing import Optional

from .engine import connect
from .errors import DockpoolError
from .instances import InstanceManager
from .ledger import Ledger
from .locking import file_lock
from .metering import DEFAULT_LEDGER_FILE, meter
from .policy import DEFAULT_POLICY_FILE, load_policy
from .usage import DEFAULT_USAGE_FILE, log, run_pass

LOCK_FILE = "/run/lock/dockpool-watchdog.lock"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dockpool-watchdog", description=__doc__)
    parser.add_argument("--usage-file", default=DEFAULT_USAGE_FILE)
    parser.add_argument("--lock-file", default=LOCK_FILE)
    parser.add_argument("--docker-host", default=None)
    parser.add_argument("--policy-file", default=DEFAULT_POLICY_FILE)
    parser.add_argument("--ledger-file", default=DEFAULT_LEDGER_FILE, help="the usage ledger (metering.py)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dockpool-watchdog[%(process)d] %(levelname)s %(message)s")
    with file_lock(args.lock_file, wait=False) as held:
        if not held:
            log.info("a previous pass is still running; skipping this one")
            return 0
        try:
            client = connect(args.docker_host, timeout=60)
            report = run_pass(client, args.usage_file)
            InstanceManager(client, load_policy(args.policy_file)).refresh_jump_keys()
            ledger = Ledger(args.ledger_file)  # refuses a damaged file, naming its backup
            try:
                meter(ledger, list(report["instances"].values()))
            finally:
                ledger.close()
        except DockpoolError as exc:
            log.error("%s", exc.message)
            return 1
        except sqlite3.OperationalError as exc:  # the disk is full: the next pass counts from the last reading
            log.error("usage ledger %s not written: %s", args.ledger_file, exc)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())  # pylint: disable=ansible-bad-function  # a program (python -m), not module code

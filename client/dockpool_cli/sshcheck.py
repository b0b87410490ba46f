"""Proving an instance can be reached: one login through its provider's jump host with the CLI's
SSH config, after `up`, `move` and `restore`."""
from __future__ import annotations

import subprocess
import time
from typing import Optional

from . import sshconfig
from .settings import Settings


def ssh_check(settings: Settings, name: str, deadline: float) -> Optional[str]:
    """Log in through the jump host with the written config until it works; None, or the last error."""
    last = "no attempt"
    config = sshconfig.ssh_config_path(settings.directory)
    while time.monotonic() < deadline:  # bounded by the caller's deadline
        done = subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", name, "true"],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
        if done.returncode == 0:
            return None
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"ssh exited {done.returncode}"
        if "Permission denied" in last:
            return last  # retrying will not change the key
        time.sleep(0.5)
    return last


def checked(settings: Settings, name: str, no_check: bool, wait: float) -> Optional[str]:
    """``ssh_check`` within ``wait`` seconds unless --no-check; None when it worked or was not asked."""
    return None if no_check else ssh_check(settings, name, time.monotonic() + wait)

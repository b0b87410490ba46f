"""Run the `dockpool` console script (installed by pip into the virtual environment)
as a client would, with its own home and configuration folder."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

DOCKPOOL = shutil.which("dockpool", path=str(Path(sys.executable).parent)) or "dockpool"


def cli(home: Path, *argv: str, token: str = "", env: Optional[dict] = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKPOOL_CONFIG_DIR": str(home / "dockpool"), "HOME": str(home), "COLUMNS": "200", **(env or {})}
    env.pop("DOCKPOOL_TOKEN", None)
    if token:
        env["DOCKPOOL_TOKEN"] = token
    return subprocess.run([DOCKPOOL, *argv], capture_output=True, text=True, env=env, timeout=240,
                          stdin=subprocess.DEVNULL, check=False)

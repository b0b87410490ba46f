"""A copy of this checkout as a clone would have it, for tests that run the project from elsewhere."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .paths import ROOT


def copy_checkout(target: Path) -> Path:
    """This checkout's files (tracked and new, nothing ignored: no .venv, no .sandbox) in ``target``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target

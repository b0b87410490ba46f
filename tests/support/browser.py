"""Headless Chromium (Debian's package) on loopback pages: screenshots and the DOM after scripts ran,
and what a test reads from a screenshot."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from PIL import Image

DESKTOP_GREEN = (0x2E, 0x6B, 0x5E)  # the desktop terminal's background (files/images/desktop/xstartup), the status page's bar


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed: scripts/setup.sh installs Debian's package")
    return found


def _run(url: str, *extra: str, budget_ms: int) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="dockpool-chromium-") as profile:
        argv = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1280,860",
                f"--virtual-time-budget={budget_ms}", *extra, url]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False)


def screenshot(url: str, path: Path, budget_ms: int = 8000) -> Path:
    done = _run(url, f"--screenshot={path}", budget_ms=budget_ms)
    assert path.exists(), f"chromium made no screenshot (exit {done.returncode}): {done.stderr[-1500:]}"
    return path


def dom(url: str, budget_ms: int = 5000) -> str:
    done = _run(url, "--dump-dom", budget_ms=budget_ms)
    assert done.returncode == 0, done.stderr[-1500:]
    return done.stdout


def keep(shot: Path, name: str) -> None:
    """Copy a screenshot to DOCKPOOL_SCREENSHOT_DIR (as `make screenshots` sets it) under ``name``."""
    target = os.environ.get("DOCKPOOL_SCREENSHOT_DIR")
    if target:
        shutil.copyfile(shot, Path(target) / name)


def share_of(shot: Path, colour: tuple[int, int, int], tolerance: int = 6) -> float:
    """The share of a screenshot's pixels within ``tolerance`` of ``colour``."""
    raw = Image.open(shot).convert("RGB").tobytes()
    pixels = len(raw) // 3
    near = sum(1 for i in range(0, len(raw), 3) if all(abs(raw[i + k] - colour[k]) <= tolerance for k in range(3)))
    return near / pixels

"""A desktop instance (TigerVNC, noVNC) and the status page, through the real API
process and the real engine, looked at by a real VNC handshake and headless Chromium.

Set DOCKPOOL_SCREENSHOT_DIR (as `make screenshots` does) to keep the screenshots."""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from support.api_config import TOKENS, make_config
from support.api_process import api_process
from support.browser import dom, screenshot
from support.rfb import rfb_login, wait_for_rfb_login
from support.ssh import ssh_run

pytestmark = pytest.mark.engine
DESKTOP_GREEN = (0x2E, 0x6B, 0x5E)  # the terminal's background in files/images/desktop/xstartup


def keep(shot: Path, name: str) -> None:
    target = os.environ.get("DOCKPOOL_SCREENSHOT_DIR")
    if target:
        shutil.copyfile(shot, Path(target) / name)


def share_of(shot: Path, colour: tuple[int, int, int], tolerance: int = 6) -> float:
    raw = Image.open(shot).convert("RGB").tobytes()
    pixels = len(raw) // 3
    near = sum(1 for i in range(0, len(raw), 3) if all(abs(raw[i + k] - colour[k]) <= tolerance for k in range(3)))
    return near / pixels


@pytest.fixture
def service(tmp_path, engine):
    settings = make_config(tmp_path, images=["debian-sshd", "desktop"], provider_name="lab")
    settings["limits"] = {**settings["limits"], "max_memory": "512m"}
    with api_process(tmp_path, settings) as url:
        yield url
    for c in engine.containers.list(all=True, filters={"label": "dockpool.owner"}):
        if c.labels.get("dockpool.owner") in TOKENS:
            c.remove(force=True)


def test_desktop_instance_vnc_password_novnc_and_ssh(service, keypair, tmp_path, engine):
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    made = requests.post(f"{service}/v1/instances", json={"image": "desktop", "public_key": keypair[1], "memory": "384m"},
                         headers=headers, timeout=180)
    assert made.status_code == 201, made.text
    view = made.json()
    password, vnc_port = view["desktop"]["vnc_password"], int(view["desktop"]["vnc_address"].rsplit(":", 1)[1])
    assert len(password) == 8 and password.isalnum()
    assert view["desktop"]["novnc_url"].startswith("http://127.0.0.1:")
    # Returned once: never again, and not in the image.
    again = requests.get(f"{service}/v1/instances/{view['id']}", headers=headers, timeout=30).json()
    assert "vnc_password" not in again["desktop"] and again["desktop"]["novnc_url"] == view["desktop"]["novnc_url"]
    image_env = engine.images.get("dockpool/desktop:latest").attrs["Config"]["Env"] or []
    assert not [e for e in image_env if e.startswith("DOCKPOOL_VNC_PASSWORD")]

    assert ssh_run(keypair[0], view["ssh"]["port"], "hostname").stdout.strip() == view["name"]
    version, accepted = wait_for_rfb_login("127.0.0.1", vnc_port, password)  # Xvnc starts after sshd
    assert version.startswith("RFB 003.") and accepted
    assert rfb_login("127.0.0.1", vnc_port, "wrong123")[1] is False

    # A second desktop gets a password of its own.
    other = requests.post(f"{service}/v1/instances", json={"image": "desktop", "public_key": keypair[1], "memory": "384m"},
                          headers=headers, timeout=180).json()
    assert other["desktop"]["vnc_password"] != password

    # The session's terminal starts after Xvnc (xstartup): on a loaded machine that takes a while,
    # and a screenshot before it shows an empty desktop. Wait for it, bounded, then look.
    deadline = time.monotonic() + 60
    while ssh_run(keypair[0], view["ssh"]["port"], "pgrep -x xterm").returncode != 0:
        assert time.monotonic() < deadline, "the desktop session's terminal never started"
        time.sleep(1)
    shares = []
    for attempt in range(3):  # noVNC may still be connecting when the first shot is taken
        shot = screenshot(f"{view['desktop']['novnc_url']}&password={password}", tmp_path / f"desktop-{attempt}.png", budget_ms=15000)
        shares.append(share_of(shot, DESKTOP_GREEN))
        if shares[-1] > 0.10:
            break
    keep(shot, "desktop-novnc.png")
    # The desktop's terminal fills a good part of the page only when noVNC connected and drew it.
    assert shares[-1] > 0.10, f"noVNC did not show the desktop (terminal's share of each shot: {shares})"


def test_status_page_shows_specs_capacity_and_a_clients_instance(service, keypair, tmp_path):
    headers = {"Authorization": f"Bearer {TOKENS['bob']}"}
    made = requests.post(f"{service}/v1/instances", json={"public_key": keypair[1]}, headers=headers, timeout=120)
    assert made.status_code == 201, made.text
    name = made.json()["name"]
    specs = requests.get(f"{service}/v1/specs", timeout=30).json()

    anonymous = requests.get(f"{service}/", timeout=30)
    assert anonymous.status_code == 200 and anonymous.headers["Content-Type"].startswith("text/html")
    assert specs["cpu"]["model"] in anonymous.text and "1 running" in anonymous.text
    assert name not in anonymous.text  # others' instances are counts only
    assert "<script src" not in anonymous.text and "<link" not in anonymous.text and "http-equiv=\"refresh\"" in anonymous.text
    own = requests.get(f"{service}/", headers=headers, timeout=30).text
    assert name in own and "running" in own
    refused = requests.get(f"{service}/", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert refused.status_code == 200 and "not accepted" in refused.text and name not in refused.text

    # In a browser: the token after # stays in the tab's sessionStorage, and the page shows the instance.
    page = f"{service}/#token={TOKENS['bob']}"
    shown = dom(page)
    assert name in shown
    # Sizes in human units (GiB, MiB), never raw bytes or kibibytes.
    unit = r"\d+(\.\d)? (B|KiB|MiB|GiB|TiB)"
    assert re.search(rf"<th>Memory</th><td>{unit} free of {unit}</td>", shown), shown
    assert re.search(rf"<th>Disk</th><td>{unit} free of {unit}</td>", shown)
    row = shown[shown.find(name):]
    assert re.search(rf"<td>{unit}</td>\s*<td>(-|{unit}) / {unit}</td>", row), row[:1500]  # memory; disk used / limit
    for raw in (specs["memory"]["total"], specs["memory"]["total"] // 1024, specs["disk"]["total"]):
        assert str(raw) not in shown
    shot = screenshot(page, tmp_path / "status.png")
    keep(shot, "status-page.png")
    assert share_of(shot, DESKTOP_GREEN, tolerance=2) > 0.005  # the page's header bar was drawn

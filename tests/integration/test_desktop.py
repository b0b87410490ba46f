"""A desktop instance (TigerVNC, noVNC) through the real API process and the real engine, looked
at by a real VNC handshake and headless Chromium.

Set DOCKPOOL_SCREENSHOT_DIR (as `make screenshots` does) to keep the screenshot."""
from __future__ import annotations

import time

import requests

from support.api_config import TOKENS
from support.browser import DESKTOP_GREEN, keep, screenshot, share_of
from support.rfb import rfb_login, wait_for_rfb_login
from support.ssh import ssh_run


def test_desktop_instance_vnc_password_novnc_and_ssh(lab_service, keypair, tmp_path, engine):
    headers = {"Authorization": f"Bearer {TOKENS['alice']}"}
    made = requests.post(f"{lab_service}/v1/instances", json={"image": "desktop", "public_key": keypair[1], "memory_reservation": "384m"},
                         headers=headers, timeout=180)
    assert made.status_code == 201, made.text
    view = made.json()
    password, vnc_port = view["desktop"]["vnc_password"], int(view["desktop"]["vnc_address"].rsplit(":", 1)[1])
    assert len(password) == 8 and password.isalnum()
    assert view["desktop"]["novnc_url"].startswith("http://127.0.0.1:")
    # Returned once: never again, and not in the image.
    again = requests.get(f"{lab_service}/v1/instances/{view['id']}", headers=headers, timeout=30).json()
    assert "vnc_password" not in again["desktop"] and again["desktop"]["novnc_url"] == view["desktop"]["novnc_url"]
    image_env = engine.images.get("dockpool/desktop:latest").attrs["Config"]["Env"] or []
    assert not [e for e in image_env if e.startswith("DOCKPOOL_VNC_PASSWORD")]

    assert ssh_run(keypair[0], view["ssh"]["port"], "hostname").stdout.strip() == view["name"]
    version, accepted = wait_for_rfb_login("127.0.0.1", vnc_port, password)  # Xvnc starts after sshd
    assert version.startswith("RFB 003.") and accepted
    assert rfb_login("127.0.0.1", vnc_port, "wrong123")[1] is False

    # A second desktop gets a password of its own.
    other = requests.post(f"{lab_service}/v1/instances", json={"image": "desktop", "public_key": keypair[1], "memory_reservation": "384m"},
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



"""The status page of the real API process, looked at by headless Chromium.

Set DOCKPOOL_SCREENSHOT_DIR (as `make screenshots` does) to keep the screenshot."""
from __future__ import annotations

import re

import requests

from support.api_config import TOKENS
from support.browser import DESKTOP_GREEN, dom, keep, screenshot, share_of


def test_status_page_shows_specs_capacity_and_a_clients_instance(lab_service, keypair, tmp_path):
    headers = {"Authorization": f"Bearer {TOKENS['bob']}"}
    made = requests.post(f"{lab_service}/v1/instances", json={"public_key": keypair[1]}, headers=headers, timeout=120)
    assert made.status_code == 201, made.text
    name = made.json()["name"]
    specs = requests.get(f"{lab_service}/v1/specs", timeout=30).json()

    anonymous = requests.get(f"{lab_service}/", timeout=30)
    assert anonymous.status_code == 200 and anonymous.headers["Content-Type"].startswith("text/html")
    assert specs["cpu"]["model"] in anonymous.text and "1 running" in anonymous.text
    assert name not in anonymous.text  # others' instances are counts only
    assert "<script src" not in anonymous.text and "<link" not in anonymous.text and "http-equiv=\"refresh\"" in anonymous.text
    own = requests.get(f"{lab_service}/", headers=headers, timeout=30).text
    assert name in own and "running" in own
    refused = requests.get(f"{lab_service}/", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert refused.status_code == 200 and "not accepted" in refused.text and name not in refused.text

    # In a browser: the token after # stays in the tab's sessionStorage, and the page shows the instance.
    page = f"{lab_service}/#token={TOKENS['bob']}"
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

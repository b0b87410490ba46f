"""Desktop instances: the VNC password and the links a client is given."""
from __future__ import annotations

from dockpool.desktop import VNC_PASSWORD_LENGTH, desktop_password, desktop_view
from dockpool.labels import PublishedPort


def test_desktop_password_and_view():
    passwords = {desktop_password() for _ in range(50)}
    assert len(passwords) == 50 and all(len(p) == VNC_PASSWORD_LENGTH and p.isalnum() for p in passwords)
    ports = [PublishedPort("SSH", 22, 40000), PublishedPort("VNC", 5901, 40001), PublishedPort("noVNC", 6901, 40002)]
    assert desktop_view(ports, "p1.example") == {"novnc_url": "http://p1.example:40002/vnc.html?autoconnect=true&resize=scale",
                                                 "vnc_address": "p1.example:40001"}
    assert desktop_view(ports, "2001:db8::1")["novnc_url"].startswith("http://[2001:db8::1]:40002/")
    assert desktop_view(ports[:1], "p1.example") is None



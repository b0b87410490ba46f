"""Desktop instances: their VNC password and the addresses a client opens."""
from __future__ import annotations

import secrets
from typing import Any, Optional, Sequence

from .addresses import host_port, url_host

# VNC authentication reads only the first 8 characters of a password (RFB's DES
# challenge), so a longer one would only look stronger. No look-alike characters.
VNC_PASSWORD_LENGTH = 8
_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
NOVNC_PORT_NAME = "noVNC"
VNC_PORT_NAME = "VNC"


def desktop_password() -> str:
    return "".join(secrets.choice(_ALPHABET) for _position in range(VNC_PASSWORD_LENGTH))


def desktop_view(ports: Sequence[Any], host: str) -> Optional[dict[str, Any]]:
    """noVNC's address and the VNC port, when the instance publishes them (by the image's port names)."""
    by_name = {p.name.lower(): p for p in ports if p.protocol == "tcp"}
    novnc, vnc = by_name.get(NOVNC_PORT_NAME.lower()), by_name.get(VNC_PORT_NAME.lower())
    if novnc is None:
        return None
    shown = url_host(host)
    return {
        "novnc_url": f"http://{shown}:{novnc.host_port}/vnc.html?autoconnect=true&resize=scale",
        "vnc_address": None if vnc is None else host_port(host, vnc.host_port),
    }

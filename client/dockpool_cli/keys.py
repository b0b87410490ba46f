"""The SSH key pair the client's instances take: --key, else the user's own, else one made for dockpool."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

from .errors import REFUSED, CliError
from .render import err
from .settings import Settings


def client_key(settings: Settings, given: Optional[str]) -> Path:
    """The private key to log in with: --key, else ~/.ssh/id_ed25519, else one made for dockpool."""
    if given:
        key = Path(given).expanduser()
    else:
        own = Path.home() / ".ssh" / "id_ed25519"
        key = own if own.exists() else settings.directory / "id_ed25519"
        if not key.exists():
            key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dockpool", "-f", str(key)],
                           check=True, capture_output=True, timeout=60)
            err.print(f"Made an SSH key for dockpool: {key}")
    if not public_key_path(key).exists():
        raise CliError(f"{key}.pub does not exist: --key names a private key whose .pub sits beside it", REFUSED)
    return key


def public_key_path(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def public_key(key: Path) -> str:
    """The public half, as a create or move request carries it."""
    return public_key_path(key).read_text(encoding="utf-8").strip()

"""The SSH config file the CLI owns (``Include`` it from ~/.ssh/config), one block per instance.

Each instance gets two Host entries: ``<name>`` and ``<name>.jump``, the provider's
jump account on port 22000 that ``ProxyJump`` goes through (a jump host does not
inherit the instance's IdentityFile, so it has an entry of its own). Known host keys
go to a file of our own, keyed by the instance's name so that a port reused by a
later instance is not mistaken for an attack on an earlier one.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from .settings import write_private

BEGIN = "# >>> dockpool {name}"
END = "# <<< dockpool {name}"
_SAFE = re.compile(r"[A-Za-z0-9@._:\[\]/+=-]+")  # no spaces, quotes or newlines


def ssh_config_path(directory: Path) -> Path:
    return directory / "ssh_config"


def known_hosts_path(directory: Path) -> Path:
    return directory / "known_hosts"


def _value(text: Any) -> str:
    """A value as ssh_config reads it; anything that could add a directive is refused."""
    value = str(text)
    if not _SAFE.fullmatch(value):
        raise ValueError(f"refusing to write {value!r} into the SSH config")
    return value


def entry(name: str, ssh: dict[str, Any], key: Path, directory: Path) -> str:
    jump, known = ssh["jump"], known_hosts_path(directory)
    common = [f"    IdentityFile {_value(key)}", "    IdentitiesOnly yes",
              f"    UserKnownHostsFile {_value(known)}", "    StrictHostKeyChecking accept-new"]
    lines = [
        BEGIN.format(name=name),
        f"Host {_value(name)}.jump",
        f"    HostName {_value(jump['host'])}",
        f"    Port {int(jump['port'])}",
        f"    User {_value(jump['user'])}",
        *common,
        f"Host {_value(name)}",
        f"    HostName {_value(ssh['target_host'])}",
        f"    Port {int(ssh['port'])}",
        f"    User {_value(ssh['user'])}",
        f"    ProxyJump {_value(name)}.jump",
        f"    HostKeyAlias {_value(name)}",
        *common,
        END.format(name=name),
    ]
    return "\n".join(lines) + "\n"


def _without(text: str, name: str) -> str:
    begin, end = BEGIN.format(name=name), END.format(name=name)
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == begin:
            skipping = True
        elif skipping and line.rstrip("\n") == end:
            skipping = False
        elif not skipping:
            kept.append(line)
    return "".join(kept)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def forget_host_key(directory: Path, name: str) -> None:
    known = known_hosts_path(directory)
    if known.exists():
        subprocess.run(["ssh-keygen", "-R", name, "-f", str(known)], capture_output=True, check=False, timeout=30)
        Path(f"{known}.old").unlink(missing_ok=True)


def add(directory: Path, name: str, ssh: dict[str, Any], key: Path) -> Path:
    """Write (or replace) the instance's entries; returns the config file."""
    path = ssh_config_path(directory)
    block = entry(name, ssh, key, directory)
    forget_host_key(directory, name)  # a new instance under an old name has a new host key
    write_private(path, _without(_read(path), name) + block)
    return path


def remove(directory: Path, name: str) -> bool:
    """Drop the instance's entries and its host key; True when there were any."""
    path = ssh_config_path(directory)
    text = _read(path)
    kept = _without(text, name)
    forget_host_key(directory, name)
    if kept == text:
        return False
    write_private(path, kept)
    return True


def names(directory: Path) -> list[str]:
    prefix = BEGIN.format(name="")
    return [line[len(prefix):].strip() for line in _read(ssh_config_path(directory)).splitlines() if line.startswith(prefix)]

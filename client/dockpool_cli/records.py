"""The client's record of its instances (in config.json, with their SSH entries): which provider
holds one, and the record following it when it lives elsewhere (moved, restored, drained)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from . import sshconfig
from .api import Provider
from .settings import Settings
from .shapes import InstanceView


def locate(settings: Settings, name: str, url: Optional[str]) -> tuple[Provider, str]:
    """The provider holding ``name``: --provider, else where `up` made it, else the default."""
    known = settings.instances.get(name)
    chosen = settings.provider(url or (known or {}).get("provider"))
    return settings.connect(chosen), name


def relocate(settings: Settings, name: str, url: str, view: InstanceView, key: Path, keep_name: bool = True) -> Path:
    """``name`` lives at ``url`` now, as ``view``: its record and SSH entries follow it there, every
    alias with it. After a drain or a restore the old name stays an alias too (the client did not
    choose the change, and may still type it); a move the client asked for drops it, as the client
    was told the new name. The SSH config's path."""
    known = settings.instances.pop(name, None) or {}
    aliases = sorted({*known.get("aliases", []), *([name] if keep_name else [])} - {view["name"]})
    settings.instances[view["name"]] = {"provider": url, "id": view["id"], "key": str(key),
                                        **({"aliases": aliases} if aliases else {})}
    settings.save()
    if not keep_name:
        sshconfig.remove(settings.directory, name)
    for host in (view["name"], *aliases):
        config = sshconfig.add(settings.directory, host, view["ssh"], key)
    return config

"""The client's own files: config.json (tokens, mode 0600), the SSH config to Include, known hosts."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .api import Provider
from .errors import AUTH, CliError


def config_dir() -> Path:
    """$DOCKPOOL_CONFIG_DIR, else $XDG_CONFIG_HOME/dockpool, else ~/.config/dockpool."""
    explicit = os.environ.get("DOCKPOOL_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dockpool"


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, atomically (never a half-written token file)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"provider URL {url!r} must start with http:// or https://", 2)
    return url


@dataclass
class Settings:
    path: Path
    default: Optional[str] = None
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Optional[Path] = None) -> "Settings":
        path = (directory or config_dir()) / "config.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except ValueError as exc:
            raise CliError(f"{path} is not valid JSON ({exc}); fix or remove it") from None
        return cls(path, data.get("default"), dict(data.get("providers") or {}), dict(data.get("instances") or {}))

    def save(self) -> None:
        data = {"default": self.default, "providers": self.providers, "instances": self.instances}
        write_private(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    @property
    def directory(self) -> Path:
        return self.path.parent

    def provider(self, url: Optional[str]) -> str:
        """The provider a command talks to: the one named, else the default."""
        if url:
            return normalise_url(url)
        if not self.default:
            raise CliError("not logged in to any provider: run `dockpool login URL` first", AUTH)
        return self.default

    def token(self, url: str) -> Optional[str]:
        return (self.providers.get(url) or {}).get("token")

    def fingerprint(self, url: str) -> Optional[str]:
        """The certificate pinned at login for a provider no CA vouches for."""
        return (self.providers.get(url) or {}).get("fingerprint")

    def connect(self, url: str, timeout: float = 30.0) -> Provider:
        """The provider at ``url`` with this client's token and pinned certificate."""
        return Provider(url, self.token(url), self.fingerprint(url), timeout)

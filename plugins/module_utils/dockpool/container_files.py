"""Files inside an instance, through the engine's archive API (no exec, no shell).

Works on created and stopped containers alike, so the client's key is in place
before sshd first starts.
"""
from __future__ import annotations

import io
import tarfile
import time
from dataclasses import dataclass
from typing import Any, Optional

from .engine import engine_errors
from .errors import InvalidInput, NotFound


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str


def parse_passwd(text: str, user: str) -> Optional[Account]:
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == user:
            try:
                return Account(user, int(fields[2]), int(fields[3]), fields[5] or "/")
            except ValueError:
                return None
    return None


def read_file(container: Any, path: str, limit: int = 1 << 20) -> Optional[bytes]:
    """A regular file's bytes (at most ``limit``), or None when it does not exist."""
    try:
        with engine_errors(f"reading {path} in the instance"):
            stream, stat = container.get_archive(path)
            if stat.get("size", 0) > limit:
                raise InvalidInput(f"{path} in the instance is larger than {limit} bytes", "path")
            data = b"".join(stream)
    except NotFound:
        return None
    archive = io.BytesIO(data)
    with tarfile.open(fileobj=archive) as tar:
        member = tar.next()
        if member is None or not member.isfile():
            return None
        handle = tar.extractfile(member)
        return handle.read() if handle else None


def find_account(container: Any, user: str, image: str) -> Account:
    account = parse_passwd((read_file(container, "/etc/passwd") or b"").decode("utf-8", "replace"), user)
    if account is None:
        raise InvalidInput(f"ssh_user: the user {user!r} does not exist in image {image!r}", "ssh_user")
    return account


def write_authorized_key(container: Any, account: Account, public_key: str) -> None:
    """Install exactly this key as the account's only authorized key (dir 0700, file 0600)."""
    payload = (public_key.strip() + "\n").encode()
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        directory = tarfile.TarInfo(".ssh")
        directory.type, directory.mode = tarfile.DIRTYPE, 0o700
        entry = tarfile.TarInfo(".ssh/authorized_keys")
        entry.size, entry.mode = len(payload), 0o600
        for info in (directory, entry):
            info.uid, info.gid, info.mtime = account.uid, account.gid, now
        tar.addfile(directory)
        tar.addfile(entry, io.BytesIO(payload))
    with engine_errors(f"writing the key into {account.home}"):
        container.put_archive(account.home, buffer.getvalue())

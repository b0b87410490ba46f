"""Files other processes read while we write them: replaced whole, never seen half-written."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def write_json(path: str, data: Any, mode: int = 0o644) -> None:
    """``data`` as indented JSON, written atomically (see write_text)."""
    write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n", mode)


def write_text(path: str, text: str, mode: int = 0o644) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``.

    A reader sees the old file or the new one; a writer killed mid-way leaves only
    a stray temporary file, never a truncated ``path``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def read_json(path: str) -> Any:
    """The file's data; raises OSError or ValueError for a missing or corrupt file."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)

"""Sizes as people write them ("512m", "2GiB") and as Docker wants them (bytes)."""
from __future__ import annotations

import re
from typing import Optional, Union

from .errors import InvalidInput

# Docker's convention: k, m, g are binary multiples; "MB" and "MiB" mean the same here.
_MULTIPLIERS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(value: Union[str, int, None], field: str) -> Optional[int]:
    """Return bytes for ``value``; None stays None. Raises InvalidInput naming ``field``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(f"{field}: expected a size such as 512m or 2g, got {value!r}", field)
    if isinstance(value, int):
        if value <= 0:
            raise InvalidInput(f"{field}: must be a positive size, got {value}", field)
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise InvalidInput(
            f"{field}: {value!r} is not a size; use a number with an optional unit "
            "b, k, m, g or t (for example 512m, 2g, 1GiB)",
            field,
        )
    number, unit = match.groups()
    size = int(float(number) * _MULTIPLIERS[unit.lower()])
    if size <= 0:
        raise InvalidInput(f"{field}: must be a positive size, got {value!r}", field)
    return size


def format_size(size: Optional[int]) -> Optional[str]:
    """Shortest exact human form of a byte count: 536870912 -> '512m'."""
    if size is None:
        return None
    for unit in ("t", "g", "m", "k"):
        factor = _MULTIPLIERS[unit]
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def human_size(size: Optional[int]) -> str:
    """A byte count for people to read, rounded: 25275305984 -> '23.5 GiB'; None -> '-'."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" or value >= 100 else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"

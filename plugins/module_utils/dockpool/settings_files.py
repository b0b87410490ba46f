"""An operator's settings file: one JSON object, or an error that names the file and the field."""
from __future__ import annotations

from .atomicfile import read_json
from .errors import InvalidInput


def read_settings(path: str, what: str, field: str) -> dict:
    """The object in ``path``; InvalidInput on ``field`` if it is unreadable, not JSON or not an object."""
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: cannot read {what} ({exc})", field) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: {what} must be a JSON object", field)
    return data

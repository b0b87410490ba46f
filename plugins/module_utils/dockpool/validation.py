"""Checks for the strings a caller hands us: names, image references, SSH keys.

Everything that ends up in a container name, a label, a path or a file inside
an instance passes through here first, so nothing else has to worry about
path separators, shell metacharacters or injected key options.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import struct
from typing import Any

from .errors import InvalidInput

# Docker's own container-name rule, capped so that names stay readable in `docker ps`.
NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)
# An engine's container id, whole (64 hex digits) or shortened as `docker ps` shows it.
ID_PATTERN = r"^[0-9a-f]{12,64}$"
# A local image reference: [namespace/]repo[:tag], lowercase, no registry host or digest.
_IMAGE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")
# Key types OpenSSH accepts in authorized_keys without extra options.
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
MIN_RSA_BITS = 2048
_WHOLE = re.compile(r"^-?[0-9]{1,18}$")
_MAX_KEY_LENGTH = 16384


def whole_number(value: Any, field: str, low: int, high: int) -> int:
    """A whole number in [low, high] from an int or its decimal text (as Ansible passes it).

    The one parser of counts for every caller, so that a limit is always compared
    with the number, never with the text (``"16" > 2`` is not a question to ask)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidInput(f"{field}: expected a whole number from {low} to {high}, got {value!r}", field)
    if isinstance(value, str) and not _WHOLE.match(value.strip()):
        raise InvalidInput(f"{field}: expected a whole number from {low} to {high}, got {value[:40]!r}", field)
    number = int(value)
    if not low <= number <= high:
        raise InvalidInput(f"{field}: {number} is outside {low}-{high}", field, {"min": low, "max": high})
    return number


def cpu_amount(value: Any, field: str, high: float) -> float:
    """A number of CPUs from 0.01 to ``high`` (0.5 is half a CPU), from a number or its text."""
    try:
        amount = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else math.nan
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount) or not 0.01 <= amount <= high:
        raise InvalidInput(f"{field}: expected a number of CPUs from 0.01 to {high:g} (for example 0.5), got {value!r}",
                           field, {"min": 0.01, "max": high})
    return round(amount, 2)


def validate_name(value: object, field: str = "name") -> str:
    """An instance or owner name: letters, digits, '.', '_', '-'; starts alphanumeric."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidInput(
            f"{field}: {value!r} is not allowed; use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            field,
        )
    return value


def validate_image_ref(value: object, field: str = "image") -> str:
    """A local image name such as ``debian-sshd`` or ``dockpool/debian-sshd:latest``."""
    if not isinstance(value, str) or len(value) > 255 or not _IMAGE.match(value) or ".." in value:
        raise InvalidInput(
            f"{field}: {value!r} is not a valid image name; use lowercase letters, digits, "
            "'.', '_', '-', '/' and an optional ':tag'",
            field,
        )
    return value


def _read_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise ValueError("truncated")
    (length,) = struct.unpack(">I", blob[offset : offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise ValueError("truncated")
    return blob[offset + 4 : end], end


def _rsa_bits(blob: bytes) -> int:
    _key_type, offset = _read_string(blob, 0)
    _exponent, offset = _read_string(blob, offset)
    modulus, _end = _read_string(blob, offset)
    return int.from_bytes(modulus, "big").bit_length()


def validate_public_key(value: object, field: str = "public_key") -> str:
    """One OpenSSH public key line, no options; returns it normalised as 'type base64 [comment]'."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field}: an OpenSSH public key is required (for example 'ssh-ed25519 AAAA... me@host')", field)
    text = value.strip()
    if len(text) > _MAX_KEY_LENGTH or "\n" in text or "\r" in text or "\x00" in text:
        raise InvalidInput(f"{field}: give exactly one public key on one line", field)
    parts = text.split(None, 2)
    if parts[0] not in KEY_TYPES:
        raise InvalidInput(
            f"{field}: key type {parts[0][:40]!r} is not accepted (options such as command= are not allowed); "
            f"use one of {', '.join(sorted(KEY_TYPES))}",
            field,
        )
    if len(parts) < 2:
        raise InvalidInput(f"{field}: the key data after {parts[0]!r} is missing", field)
    try:
        blob = base64.b64decode(parts[1], validate=True)
        embedded_type, _end = _read_string(blob, 0)
    except (ValueError, binascii.Error):
        raise InvalidInput(f"{field}: the key data is not valid base64 OpenSSH key material", field) from None
    if embedded_type.decode("ascii", "replace") != parts[0]:
        raise InvalidInput(f"{field}: the key data does not match its type {parts[0]!r}", field)
    if parts[0] == "ssh-rsa":
        try:
            bits = _rsa_bits(blob)
        except ValueError:
            raise InvalidInput(f"{field}: the RSA key data is truncated", field) from None
        if bits < MIN_RSA_BITS:
            raise InvalidInput(f"{field}: RSA keys need at least {MIN_RSA_BITS} bits, this one has {bits}", field,
                               {"min_bits": MIN_RSA_BITS, "bits": bits})
    comment = parts[2] if len(parts) > 2 else ""
    if any(ord(ch) < 32 for ch in comment):
        raise InvalidInput(f"{field}: the key comment holds control characters", field)
    return " ".join(p for p in (parts[0], parts[1], comment) if p)


def key_material(public_key: str) -> str:
    """'type base64' of a validated key line: what identifies the key (a comment is anyone's to choose)."""
    return " ".join(public_key.split()[:2])


def key_fingerprint(public_key: str) -> str:
    """OpenSSH's SHA256 fingerprint of a validated key, e.g. 'SHA256:abc...'."""
    blob = base64.b64decode(public_key.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"

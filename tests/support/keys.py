"""Public keys in OpenSSH's format, made from fixed bytes: valid to the parser, owned by nobody."""
from __future__ import annotations

import base64
import struct


def blob(*parts: bytes) -> str:
    return base64.b64encode(b"".join(struct.pack(">I", len(p)) + p for p in parts)).decode()


ED25519 = "ssh-ed25519 " + blob(b"ssh-ed25519", b"\x01" * 32) + " alice@laptop"
RSA_1024 = "ssh-rsa " + blob(b"ssh-rsa", b"\x01\x00\x01", b"\x00" + b"\xff" * 128)
RSA_3072 = "ssh-rsa " + blob(b"ssh-rsa", b"\x01\x00\x01", b"\x00" + b"\xff" * 384)

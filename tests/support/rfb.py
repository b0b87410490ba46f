"""A VNC client's first steps (RFB 3.8: version, security type 2, DES challenge), to check a desktop's password."""
from __future__ import annotations

import socket
import struct
import time

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes


def _vnc_key(password: str) -> bytes:
    """VNC's DES key: the password's first 8 bytes, each with its bits reversed."""
    raw = password.encode("latin-1")[:8].ljust(8, b"\0")
    return bytes(int(f"{b:08b}"[::-1], 2) for b in raw)


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"the server closed the connection after {len(data)} of {size} bytes")
        data += chunk
    return data


def rfb_login(host: str, port: int, password: str, timeout: float = 10.0) -> tuple[str, bool]:
    """(the server's protocol version, whether it accepted the password)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        version = _recv(sock, 12)
        sock.sendall(b"RFB 003.008\n")
        count = _recv(sock, 1)[0]
        if count == 0:
            raise ConnectionError("the server refused the connection: " + _recv(sock, struct.unpack(">I", _recv(sock, 4))[0]).decode())
        types = _recv(sock, count)
        if 2 not in types:
            raise ConnectionError(f"the server does not offer VNC authentication (offers {list(types)})")
        sock.sendall(b"\x02")
        challenge = _recv(sock, 16)
        key = _vnc_key(password)
        encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()  # one key three times: single DES, as RFB wants
        sock.sendall(encryptor.update(challenge) + encryptor.finalize())
        accepted = struct.unpack(">I", _recv(sock, 4))[0] == 0
        return version.decode().strip(), accepted


def wait_for_rfb_login(host: str, port: int, password: str, timeout: float = 30.0) -> tuple[str, bool]:
    """rfb_login once the server answers: a desktop's Xvnc starts after its sshd (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return rfb_login(host, port, password)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)

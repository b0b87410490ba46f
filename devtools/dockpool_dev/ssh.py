"""A real OpenSSH client, run with an argument list."""
from __future__ import annotations

import subprocess
from pathlib import Path

BASE_OPTIONS = [
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
]


def make_keypair(directory: Path, name: str = "id_ed25519") -> tuple[Path, str]:
    """A fresh ed25519 key pair; returns (private key path, public key line)."""
    private = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"test-{name}", "-f", str(private)], check=True)
    return private, (directory / f"{name}.pub").read_text().strip()


def ssh_run(key: Path, port: int, command: str, user: str = "root", host: str = "127.0.0.1",
            options: tuple[str, ...] = (), timeout: float = 60) -> subprocess.CompletedProcess:
    argv = ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", *BASE_OPTIONS, *options, "-p", str(port), f"{user}@{host}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def ssh_password_attempt(port: int, user: str = "root", host: str = "127.0.0.1") -> subprocess.CompletedProcess:
    """Try password and keyboard-interactive login only; sshd must refuse and offer publickey alone."""
    argv = [
        "ssh", *BASE_OPTIONS,
        "-o", "PubkeyAuthentication=no",
        "-o", "PreferredAuthentications=password,keyboard-interactive",
        "-p", str(port), f"{user}@{host}", "true",
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

"""Throwaway test images built on the local base image (no registry here)."""
from __future__ import annotations

import io

DOCKERFILES = {
    # Publishes 22 but runs no sshd: sshd never answers.
    "silent": b'FROM local/debian:bookworm\nEXPOSE 22\nCMD ["sleep", "infinity"]\n',
    # Publishes 22 and exits at once.
    "dying": b'FROM local/debian:bookworm\nEXPOSE 22\nCMD ["false"]\n',
    # An ordinary sshd image that knows nothing of dockpool (no key label, no entrypoint).
    "plain-sshd": b'FROM local/debian:bookworm\nRUN mkdir -p /run/sshd && ssh-keygen -A\nEXPOSE 22\n'
                  b'CMD ["/usr/sbin/sshd", "-D", "-e"]\n',
}


def build_test_image(engine, kind: str) -> str:
    tag = f"dockpool-test/{kind}:latest"
    engine.images.build(fileobj=io.BytesIO(DOCKERFILES[kind]), tag=tag, rm=True, pull=False)
    return tag

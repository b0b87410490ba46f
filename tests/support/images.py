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
    # The default image behind a start check that needs pidfd_open(2) (Python's os.pidfd_open, as a
    # process supervisor uses it): Linux has it, gVisor's release in Debian 12 answers ENOSYS.
    "needs-pidfd": b'FROM dockpool/debian-sshd:latest\n'
                   b'RUN printf \'#!/bin/sh\\npython3 -c "import os; os.pidfd_open(os.getpid())" || exit 1\\n'
                   b'exec /usr/local/sbin/dockpool-entrypoint "$@"\\n\' > /usr/local/sbin/needs-pidfd '
                   b'&& chmod 755 /usr/local/sbin/needs-pidfd\n'
                   b'ENTRYPOINT ["/usr/local/sbin/needs-pidfd"]\nCMD ["/usr/sbin/sshd", "-D", "-e"]\n',
}


def build_test_image(engine, kind: str) -> str:
    tag = f"dockpool-test/{kind}:latest"
    engine.images.build(fileobj=io.BytesIO(DOCKERFILES[kind]), tag=tag, rm=True, pull=False)
    return tag

"""A throwaway image that publishes port 22 but runs no sshd: sshd never answers."""
from __future__ import annotations

import io

SILENT_DOCKERFILE = b'FROM local/debian:bookworm\nEXPOSE 22\nCMD ["sleep", "infinity"]\n'


def build_silent_image(engine, tag: str) -> str:
    image, _ = engine.images.build(fileobj=io.BytesIO(SILENT_DOCKERFILE), tag=tag, rm=True, pull=False)
    return tag

"""`dockpool speedtest`: download and upload Mbit/s between this machine and a provider."""
from __future__ import annotations

from typing import Optional

from dockpool.units import human_size

from . import render
from .errors import UNAVAILABLE, CliError
from .settings import Settings


def speedtest(settings: Settings, url: Optional[str], size: int, as_json: bool) -> int:
    provider = settings.connect(settings.provider(url))
    got, down = provider.download(size)
    sent, upload_seconds = provider.upload(size)
    result = {"provider": provider.url, "bytes": size, "download_bytes": got, "upload_bytes": sent,
              "download_mbit_s": round(got * 8 / down / 1e6, 1), "upload_mbit_s": round(sent * 8 / upload_seconds / 1e6, 1)}
    if got != size or sent != size:
        raise CliError(f"the speed test moved {got} down and {sent} up, not {size} bytes each way", UNAVAILABLE, result)
    if as_json:
        render.print_json(result)
    else:
        render.out.print(f"{provider.url}: download {result['download_mbit_s']} Mbit/s, "
                         f"upload {result['upload_mbit_s']} Mbit/s ({human_size(size)} each way)")
    return 0

"""Answers and request bodies shared by the v1 and the P2PRC routes."""
from __future__ import annotations

import json
import time
from typing import Any, Iterator

from bottle import HTTPResponse, request

from dockpool.errors import DockpoolError, InvalidInput

CHUNK = b"\0" * (1024 * 1024)
UPLOAD_CHUNK = 256 * 1024


class PayloadTooLarge(DockpoolError):
    http_status = 413


def parse_json(raw: bytes, field: str) -> Any:
    """A request's JSON; malformed or absurdly nested input is the caller's error, never a 500."""
    try:
        return json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise InvalidInput(f"{field}: not valid JSON ({problem})", field) from None


def json_body(value: Any, status: int = 200) -> HTTPResponse:
    return HTTPResponse(json.dumps(value), status=status, headers={"Content-Type": "application/json"})


def text_body(value: str) -> HTTPResponse:
    return HTTPResponse(value, headers={"Content-Type": "text/plain; charset=utf-8"})


def zeros(size: int) -> Iterator[bytes]:
    """``size`` zero bytes, streamed from one shared chunk (never built in memory)."""
    while size >= len(CHUNK):
        yield CHUNK  # the same object every time: no copy
        size -= len(CHUNK)
    if size:
        yield CHUNK[:size]


def read_stream(limit: int) -> tuple[int, float]:
    """Read and discard the request body, at most ``limit`` bytes; (bytes, seconds)."""
    stream = request.environ["wsgi.input"]
    declared = request.content_length
    if declared > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; at most {limit} are accepted", "body", {"max": limit})
    started, total = time.monotonic(), 0
    while True:
        want = UPLOAD_CHUNK if declared < 0 else min(UPLOAD_CHUNK, declared - total)
        if want <= 0:
            break
        chunk = stream.read(want)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(f"the body exceeds {limit} bytes", "body", {"max": limit})
    return total, time.monotonic() - started

"""The API's plain HTTP listener (port 8088), bounded the way nginx bounds the HTTPS one.

waitress serves at most ``connection_limit`` connections and then stops accepting; a source that
holds that many (a header sent one byte every few seconds keeps each one alive) shuts everyone
out. So each source address may hold at most ``connections_per_source`` connections (nginx's
limit_conn), a request's header must arrive whole within ``header_timeout`` seconds
(client_header_timeout), and a connection silent for ``IDLE_SECONDS`` is closed, whether it waits
for a request or sends a body (client_body_timeout, keepalive_timeout); the role gives nginx the
same numbers. The HTTPS front connects from loopback: its own
connections are bounded by nginx per source, so the front's address has no limit here.
"""
from __future__ import annotations

import time
from typing import Any, Optional

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

from dockpool.this_machine import is_this_machine

CONNECTIONS = 512  # in all (waitress's default: 100), watched with poll() (select() stops at 1024 descriptors)
IDLE_SECONDS = 60.0
CHECK_SECONDS = 1.0  # how often the timeouts are checked


class _Channel(HTTPChannel):
    """A connection that knows when the request it is reading began."""

    _began: float = 0.0
    _reading: Optional[Any] = None
    _spoke = False  # a whole request has come in on it

    def received(self, data: bytes) -> bool:
        result = super().received(data)
        if self.request is not None and self.request is not self._reading:
            self._reading, self._began = self.request, time.time()
        if self.requests:
            self._spoke = True
        return result

    def header_late(self, now: float, seconds: float) -> bool:
        if self.requests:  # being answered: the handler's time (a drain, a move) is not the client's
            return False
        if self.request is not None:  # a request on its way: its header within the deadline
            return not self.request.headers_finished and now - self._began > seconds
        # Silent since it connected (nginx counts from there too); between requests, the idle timeout.
        return not self._spoke and now - self.creation_time > seconds


class PlainServer(TcpWSGIServer):
    """waitress's TCP server with a limit per source address and a deadline for headers."""

    channel_class = _Channel

    def __init__(self, application: Any, per_source: int, header_seconds: float, **settings: Any) -> None:
        self.per_source, self.header_seconds = per_source, header_seconds
        super().__init__(application, **settings)

    def accept(self) -> Optional[tuple[Any, Any]]:
        pair = super().accept()
        if pair is not None and self._full(pair[1][0]):
            pair[0].close()  # the source holds its share: refused at once, as nginx's limit_conn would
            return None
        return pair

    def _full(self, source: str) -> bool:
        if is_this_machine(source):  # the HTTPS front (and the host's own tools)
            return False
        return sum(1 for channel in self.active_channels.values() if channel.addr[0] == source) >= self.per_source

    def maintenance(self, now: float) -> None:
        super().maintenance(now)  # closes connections idle for channel_timeout
        for channel in list(self.active_channels.values()):
            if isinstance(channel, _Channel) and channel.header_late(now, self.header_seconds):
                channel.will_close = True


def settings() -> dict[str, Any]:
    """waitress's settings for the bounds above."""
    return {"connection_limit": CONNECTIONS, "asyncore_use_poll": True, "channel_timeout": IDLE_SECONDS,
            "cleanup_interval": CHECK_SECONDS}

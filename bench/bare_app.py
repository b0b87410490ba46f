"""The reference for the throughput benchmark: a bare Bottle route returning a
constant dict, served by waitress exactly as the API is (same threads)."""
from __future__ import annotations

import sys

from bottle import Bottle

app = Bottle()


@app.get("/")
def constant() -> dict:
    return {"ok": True}


if __name__ == "__main__":
    from dockpool_api.__main__ import server_settings  # the very settings and server the API runs with
    from dockpool_api.config import ApiConfig
    from dockpool_api.plain_listener import PlainServer

    config = ApiConfig(listen="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2]))
    PlainServer(app, config.connections_per_source, config.header_timeout,
                **{**server_settings(config), "ident": "bare"}).run()

"""The reference for the throughput benchmark: a bare Bottle route returning a
constant dict, served by waitress exactly as the API is (same threads)."""
from __future__ import annotations

import sys

import waitress
from bottle import Bottle

app = Bottle()


@app.get("/")
def constant() -> dict:
    return {"ok": True}


if __name__ == "__main__":
    from dockpool_api.__main__ import server_settings  # the very settings the API runs with
    from dockpool_api.config import ApiConfig

    settings = server_settings(ApiConfig(listen="127.0.0.1", port=int(sys.argv[1]), threads=int(sys.argv[2])))
    waitress.serve(app, **{**settings, "ident": "bare"})

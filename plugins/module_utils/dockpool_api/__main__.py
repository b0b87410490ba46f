"""Run the provider API: ``python -m dockpool_api --config /etc/dockpool/api.json``.

Served by waitress (a production WSGI server); the provider_api role runs this
from a systemd unit. For development against the local engine, see the README.
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
from typing import Optional

import requests
import waitress

from dockpool.errors import DockpoolError

from .app import make_app
from .config import load_config
from .services import Services

log = logging.getLogger("dockpool.api")


def announce(services: Services, peer: str, attempts: int = 5, delay: float = 2.0) -> None:
    """Send our table to a bootstrap peer and keep the peers its answer holds (they are verified)."""
    for attempt in range(attempts):
        try:
            reply = requests.post(f"{peer.rstrip('/')}/v1/peers", json=services.peers.table(), timeout=10,
                                  allow_redirects=False)
            if reply.status_code == 200:
                services.peers.merge(reply.json())
                log.info("exchanged peer tables with %s", peer)
                return
            log.warning("peer %s answered %s", peer, reply.status_code)
        except (requests.RequestException, ValueError, DockpoolError) as exc:
            log.info("peer %s: %s (attempt %d of %d)", peer, exc, attempt + 1, attempts)
        threading.Event().wait(delay)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dockpool-api", description=__doc__)
    parser.add_argument("--config", default="/etc/dockpool/api.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config)
        services = Services(config)
    except DockpoolError as exc:
        log.error("%s", exc.message)
        return 2
    app = make_app(config, services)
    for peer in config.bootstrap_peers:
        threading.Thread(target=announce, args=(services, peer), daemon=True).start()
    log.info("serving %s on %s:%d", config.provider_name, config.listen, config.port)
    waitress.serve(app, host=config.listen, port=config.port, threads=config.threads, ident="dockpool",
                   max_request_body_size=config.max_upload_bytes + 1024 * 1024, clear_untrusted_proxy_headers=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

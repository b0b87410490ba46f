"""Run the provider API: ``python -m dockpool_api --config /etc/dockpool/api.json``.

Served by waitress (a production WSGI server); the provider_api role runs this
from a systemd unit. For development against the local engine, see the README.
"""
from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from typing import Optional

from dockpool.errors import DockpoolError

from . import plain_listener
from .app import make_app
from .config import ApiConfig, load_config
from .fleet import tls as fleet_tls
from .fleet.admission import own_addresses
from .recovery import recover
from .wiring import build

log = logging.getLogger("dockpool.api")


def server_settings(config: ApiConfig) -> dict:
    """waitress's settings. Its defaults send 18,000 bytes per call and move output
    beyond 1 MiB (input beyond 512 KiB) to temporary files, which halves the speed
    test; these keep up to 8 MiB per connection in memory and send 1 MiB at a time."""
    mib = 1024 * 1024
    front = {}
    if config.tls_port:  # nginx on this machine terminates TLS and says who connected, and over what
        front = {"trusted_proxy": "127.0.0.1", "trusted_proxy_count": 1,
                 "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"}}
    return {**front,
        "host": config.listen, "port": config.port, "threads": config.threads, "ident": "dockpool",
        "max_request_body_size": config.max_upload_bytes + mib, "clear_untrusted_proxy_headers": True,
        "send_bytes": mib, "recv_bytes": mib, "outbuf_overflow": 8 * mib, "outbuf_high_watermark": 16 * mib,
        "inbuf_overflow": 8 * mib, **plain_listener.settings(),
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="dockpool-api", description=__doc__)
    parser.add_argument("--config", default="/etc/dockpool/api.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config)
        services = build(config)
        services.usage.check()
    except DockpoolError as exc:
        log.error("%s", exc.message)
        return 2
    recover(services.manager, services.mover, services.journal, services.store, services.replicas, config.usage_file)
    # Bind before announcing: a bootstrap peer verifies us by calling back at once.
    app = make_app(config, services)
    server = plain_listener.PlainServer(app, config.connections_per_source, config.header_timeout,
                                        **server_settings(config))
    if services.fleet is not None:
        # Relayed callers arrive from where the tunnels deliver: one of this host's non-loopback addresses.
        tunnels = frozenset(a for a in own_addresses() if not ipaddress.ip_address(a).is_loopback) if config.relays else frozenset()
        fleet_tls.serve(app, config.fleet_listen or config.listen, config.fleet_port, services.fleet, tunnels)
    services.gossip.start()
    services.spend.start()  # the fleet's spend counters: signed from the ledger now, then exchanged each round
    services.mover.settling(config.gossip_interval * 4)  # moves left in doubt, once the fleet is heard from
    services.replicas.refreshing()
    services.budgets.enforcing(config.clients, services.manager, min(30.0, config.gossip_interval))
    log.info("serving %s on %s:%d", config.provider_name, config.listen, config.port)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

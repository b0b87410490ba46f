"""Run the provider API: ``python -m dockpool_api --config /etc/dockpool/api.json``.

Served by waitress (a production WSGI server); the provider_api role runs this
from a systemd unit. For development against the local engine, see the README.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional

from dockpool import snapshots
from dockpool.errors import DockpoolError
from dockpool.usage import run_pass, usage_readable

from . import plain_listener
from .app import make_app
from .config import ApiConfig, load_config
from .fleet import tls as fleet_tls
from .services import Services

log = logging.getLogger("dockpool.api")


def rebuild_usage(services: Services) -> None:
    """A corrupt usage report is rewritten at once by a watchdog pass, not left for cron."""
    usage_file = services.config.usage_file
    if usage_readable(usage_file):
        return
    log.error("usage file %s is unreadable; rebuilding it with a watchdog pass", usage_file)
    try:
        run_pass(services.manager().client, usage_file)
    except (DockpoolError, OSError) as exc:
        log.error("could not rebuild %s: %s", usage_file, getattr(exc, "message", exc))


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
        services = Services(config)
        services.usage.check()
    except DockpoolError as exc:
        log.error("%s", exc.message)
        return 2
    try:
        # A service killed mid-move leaves what it was taking in: its source still holds the instance.
        unfinished = services.mover.forget_unfinished_landings()
        if unfinished:
            log.warning("removed %d instances of moves cut short while they arrived", unfinished)
        # A service killed mid-creation leaves instances created but never started: finish the job
        # (a whole instance a move brought stopped is kept).
        removed = services.manager().remove_unstarted("api", keep=services.mover.journal.landed_ids())
        if removed:
            log.warning("removed %d half-made instances left by an earlier run: %s", len(removed), ", ".join(removed))
        services.manager().refresh_jump_keys()  # whatever changed while the service was down
        swept = snapshots.sweep(services.manager().client)  # snapshots of moves cut short by a stop
        if swept:
            log.warning("removed %d snapshot images of unfinished moves", len(swept))
        services.mover.journal.keep_landed(r.id for r in services.manager().records())
    except DockpoolError as exc:
        log.error("could not check for half-made instances: %s", exc.message)
    services.replicas.store.sweep()  # refreshes cut short: the replicas stay as they were before them
    try:
        services.replicas.fence()  # before serving: an instance restored elsewhere must not run here meanwhile
    except DockpoolError as exc:
        log.error("could not fence the replicated instances: %s", exc.message)
    rebuild_usage(services)
    # Bind before announcing: a bootstrap peer verifies us by calling back at once.
    app = make_app(config, services)
    server = plain_listener.PlainServer(app, config.connections_per_source, config.header_timeout,
                                        **server_settings(config))
    if services.fleet is not None:
        fleet_tls.serve(app, config.fleet_listen or config.listen, config.fleet_port, services.fleet)
    services.gossip.start()
    services.mover.settling(config.gossip_interval * 4)  # moves left in doubt, once the fleet is heard from
    services.replicas.refreshing()
    services.budgets.enforcing(config.clients, services.manager, min(30.0, config.gossip_interval))
    log.info("serving %s on %s:%d", config.provider_name, config.listen, config.port)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every group of routes is given: the settings, the services, the access rules and the
metrics, and the one way a route reads a JSON body."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bottle import request

from .access import AccessPlugin
from .config import ApiConfig
from .fleet.members import view
from .metrics import Metrics
from .responses import PayloadTooLarge, parse_json
from .services import Services


@dataclass(frozen=True)
class RouteContext:
    config: ApiConfig
    services: Services
    access: AccessPlugin
    metrics: Metrics

    def body_json(self) -> Any:
        """The request's JSON body, bounded by ``max_json_bytes`` (413 beyond it)."""
        limit = self.config.max_json_bytes
        raw = request.body.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"the JSON body exceeds {limit} bytes", "body")
        return parse_json(raw, "body")

    def fleet_view(self) -> dict[str, Any]:
        """This provider's view of the fleet (``/v1/fleet`` and the status page)."""
        return {"provider": self.config.provider_name, "fleet_port": self.config.fleet_port,
                **self.services.gossip.status(), "members": [view(heard) for heard in self.services.peers.members()]}

"""The composition root (wiring.build): each part gets the narrow collaborators it uses, and
none holds the routes' Services (issue 32: Services -> Mover -> Services was a cycle)."""
from __future__ import annotations

import functools
from dataclasses import fields
from typing import Any, Iterator

from dockpool_api.config import config_from_dict
from dockpool_api.instance_side import InstanceSide
from dockpool_api.services import Services
from dockpool_api.wiring import build
from support.api_config import make_config


def _held(obj: Any) -> Iterator[Any]:
    """What ``obj`` refers to, as far as the wiring goes: attributes, containers, bound methods, partials."""
    if isinstance(obj, (list, tuple, set, frozenset)):
        yield from obj
    elif isinstance(obj, dict):
        yield from obj.values()
    elif isinstance(obj, functools.partial):
        yield obj.func
        yield from obj.args
        yield from obj.keywords.values()
    elif hasattr(obj, "__self__") and hasattr(obj, "__func__"):
        yield obj.__self__
    elif hasattr(obj, "__closure__") and obj.__closure__:
        yield from (cell.cell_contents for cell in obj.__closure__)
    elif type(obj).__module__.startswith("dockpool_api"):
        yield from vars(obj).values() if hasattr(obj, "__dict__") else ()


def reachable(start: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    todo = [start]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj
        todo.extend(_held(obj))
    return list(seen.values())


def test_no_part_holds_the_routes_services(tmp_path):
    services = build(config_from_dict(make_config(tmp_path)))
    for field in fields(services):
        part = getattr(services, field.name)
        holders = [o for o in reachable(part) if isinstance(o, Services)]
        assert holders == [], f"{field.name} reaches the routes' Services"


def test_the_mover_and_the_replicator_get_the_instance_side_and_their_collaborators(tmp_path):
    services = build(config_from_dict(make_config(tmp_path)))
    assert isinstance(services.mover.side, InstanceSide) and services.mover.side is services.instances
    assert services.mover.members is services.peers and services.mover.transport is services.transport
    assert services.replicas.side is services.instances and services.replicas.mover is services.mover
    assert services.restorer.store is services.store and services.restorer.side is services.instances
    assert services.restorer.land == services.mover.land and services.restorer.lock == services.replicas.lock
    assert services.budgets.fleet is services.spend

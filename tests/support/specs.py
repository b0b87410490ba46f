"""Instance specs as the core reads a request, on a made-up 16 GiB, 8-CPU host."""
from __future__ import annotations

from typing import Any, Optional

from dockpool.limits import Limits
from dockpool.policy import Policy, PortRange
from dockpool.spec import InstanceSpec, build_spec

GIB = 1024**3
LIMITS = Limits(max_extra_ports=4, max_cpus=None)  # the core's defaults otherwise; every core of the host may be dedicated


def make_spec(limits: Optional[Limits] = None, **params: Any) -> InstanceSpec:
    policy = Policy(port_range=PortRange(40000, 40099), limits=limits or LIMITS)
    return build_spec({"name": "alice-p1-1", **params}, policy, host_memory=16 * GIB, logical_cpus=8)

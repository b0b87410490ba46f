"""The provider's limits: per-instance defaults and maxima, and instances per client.

One source, provider.json's ``limits`` (written by the dockpool_core role); the API's
per-client limits only narrow it (``Limits.narrowed``). Every ceiling is computed here
once, so the module, the API and a move's admission hold an instance to the same bounds.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Optional

from .errors import InvalidInput
from .units import format_size, parse_size
from .validation import cpu_amount, whole_number

GIB = 1024**3
MAX_COUNT = 1000  # no count anyone sends is larger; the provider's own limits are far lower
_SIZES = ("default_memory", "max_memory", "default_disk_limit", "max_disk_limit")
PIDS_RANGE = (16, 1_000_000)  # processes an instance may be allowed: sshd and a login need 16
_COUNTS = {"max_cpus": (0, MAX_COUNT), "max_extra_ports": (0, MAX_COUNT), "instances_per_client": (0, MAX_COUNT),
           "pids_limit": PIDS_RANGE}
# A maximum and the default it bounds.
_BOUNDS = (("max_memory", "default_memory"), ("max_disk_limit", "default_disk_limit"))


@dataclass(frozen=True)
class Limits:
    """Sizes in bytes; None for a maximum means no bound but the host's. These defaults are the only
    ones: provider.json (the dockpool_core role's ``dockpool_core_limits``) overrides them key by key."""

    default_memory: int = GIB  # the reservation an instance gets when it asks none
    max_memory: Optional[int] = 4 * GIB  # every instance's hard limit, never above the host's RAM; None: the RAM
    default_disk_limit: Optional[int] = 10 * GIB  # None: no disk limit unless asked
    max_disk_limit: Optional[int] = 50 * GIB
    default_cpu_share: float = 1.0  # CPUs of the shared pool an instance without dedicated cores may use
    max_cpus: Optional[int] = 2  # dedicated physical cores per instance (within what the host can dedicate)
    max_extra_ports: int = 8
    instances_per_client: int = 5
    pids_limit: int = 512  # the default; an operator may give another per instance

    def __post_init__(self) -> None:
        for maximum, default in _BOUNDS:
            high, value = getattr(self, maximum), getattr(self, default)
            if high is not None and value is not None and value > high:
                raise InvalidInput(f"{default}: {format_size(value)} is above {maximum} ({format_size(high)})", default)

    @classmethod
    def parse(cls, settings: Any, where: str = "limits") -> dict[str, Any]:
        """Settings as given (sizes as text, counts as text or numbers) as typed values, checked."""
        if not isinstance(settings, dict):
            raise InvalidInput(f"{where}: expected a mapping of limits such as {{max_memory: 4g}}", where)
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise InvalidInput(f"{where}.{unknown[0]}: not a limit; known: {', '.join(known)}", f"{where}.{unknown[0]}")
        values: dict[str, Any] = {}
        for key, value in settings.items():
            if value is None:
                continue
            if key in _SIZES:
                values[key] = parse_size(value, f"{where}.{key}")
            elif key in _COUNTS:
                values[key] = whole_number(value, f"{where}.{key}", *_COUNTS[key])
            else:
                values[key] = cpu_amount(value, f"{where}.{key}", MAX_COUNT)
        return values

    @classmethod
    def from_settings(cls, settings: Any, where: str = "limits") -> "Limits":
        return cls(**cls.parse(settings, where))

    def narrowed(self, settings: Optional[dict[str, Any]], where: str = "limits") -> "Limits":
        """These limits as one client's (already parsed) ``settings`` narrow them: a client's maximum
        may only be lower, its default only within the maxima."""
        if not settings:
            return self
        for key, value in settings.items():
            mine = getattr(self, key)
            if key.startswith("max_") or key == "instances_per_client":
                if mine is not None and value > mine:
                    raise InvalidInput(f"{where}.{key}: {_shown(key, value)} is above the provider's "
                                       f"({_shown(key, mine)}); a client's limits only narrow the provider's",
                                       f"{where}.{key}")
        narrowed = dict(settings)
        for maximum, default in _BOUNDS:  # a lower maximum pulls the provider's default down with it
            high = narrowed.get(maximum)
            if default not in narrowed and high is not None and (getattr(self, default) or 0) > high:
                narrowed[default] = high
        return replace(self, **narrowed)

    def memory_ceiling(self, host_memory: int) -> int:
        """The most memory an instance may have here: the provider's cap, never above the host's RAM."""
        return min(self.max_memory or host_memory, host_memory)

    def cpus_ceiling(self, dedicable: int) -> int:
        """The most dedicated cores an instance may ask: the provider's cap within what the host can dedicate."""
        return dedicable if self.max_cpus is None else min(self.max_cpus, dedicable)


def _shown(key: str, value: Any) -> str:
    return str(format_size(value)) if key in _SIZES else str(value)

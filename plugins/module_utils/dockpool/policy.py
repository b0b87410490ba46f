"""What a provider allows: the port range, its limits (limits.py), hardening.

One immutable value built once by each adapter (module parameters, the API's
configuration file) and passed to the core; nothing else holds settings.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Optional

from .errors import InvalidInput
from .limits import Limits
from .settings_files import read_settings

# What sshd needs and no more: Docker's default set minus MKNOD, NET_RAW, SETFCAP,
# SETPCAP and FSETID. SYS_CHROOT is for sshd's privilege separation, AUDIT_WRITE for PAM.
SSHD_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "KILL", "NET_BIND_SERVICE", "SYS_CHROOT", "AUDIT_WRITE")
# The OCI runtimes an instance may run under: runc (the provider's kernel) or runsc (gVisor,
# a kernel in user space between the instance and the provider's; see docs/security.md).
RUNTIMES = ("runc", "runsc")


def check_runtime(value: object, field_name: str) -> str:
    if value not in RUNTIMES:
        raise InvalidInput(f"{field_name}: {value!r} is not a runtime dockpool runs instances under; "
                           f"allowed: {', '.join(RUNTIMES)}", field_name)
    return str(value)


@dataclass(frozen=True)
class PortRange:
    start: int
    end: int

    def __post_init__(self) -> None:
        if not (1024 <= self.start <= self.end <= 65535):
            raise InvalidInput(
                f"port_range: {self.start}-{self.end} is not a range within 1024-65535 with start <= end", "port_range"
            )

    @classmethod
    def parse(cls, value: object) -> "PortRange":
        """'40000-40999', [40000, 40999] or {'start':..,'end':..}."""
        try:
            if isinstance(value, str):
                low, high = value.split("-", 1)
                return cls(int(low), int(high))
            if isinstance(value, (list, tuple)) and len(value) == 2:
                return cls(int(value[0]), int(value[1]))
            if isinstance(value, dict):
                return cls(int(value["start"]), int(value["end"]))
        except (KeyError, ValueError, TypeError):
            pass
        raise InvalidInput(f"port_range: {value!r} is not a range such as 40000-40999", "port_range")

    def __len__(self) -> int:
        return self.end - self.start + 1

    def __iter__(self):
        return iter(range(self.start, self.end + 1))


@dataclass(frozen=True)
class Policy:
    port_range: PortRange = field(default_factory=lambda: PortRange(40000, 40999))
    bind_address: str = "0.0.0.0"
    # The provider's public address: the one setting clients and peers reach it by (the SSH
    # instructions, the peer table; the role also puts it in the fleet certificate). None: the
    # bind address, or loopback when instances bind to every address (set it: the role does).
    public_address: Optional[str] = None
    limits: Limits = field(default_factory=Limits)  # per instance and per client; the API's clients only narrow them
    shared_cores_min: int = 1  # cores never dedicated, left to the host and shared instances
    image_prefix: str = "dockpool/"
    ssh_user: str = "root"
    lock_path: str = "/run/lock/dockpool.lock"
    capabilities: tuple[str, ...] = SSHD_CAPABILITIES
    log_max_size: str = "10m"
    # The jump account (see jumpaccess.py): its name, the key list sshd reads for it, and
    # the freed ports its older connections may still reach. None: no jump account here.
    jump_user: Optional[str] = None
    jump_keys_file: Optional[str] = None
    released_ports_file: Optional[str] = None
    # The runtime instances run under, and images that run under another one instead
    # (an image known not to work under gVisor): ((image name, runtime), ...).
    runtime: str = "runc"
    image_runtimes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        check_runtime(self.runtime, "runtime")
        for image, runtime in self.image_runtimes:
            check_runtime(runtime, f"image_runtimes[{image}]")
        try:
            ipaddress.ip_address(self.bind_address)
        except ValueError:
            raise InvalidInput(f"bind_address: {self.bind_address!r} is not an IP address", "bind_address") from None
        if self.public_address is not None:
            try:
                ipaddress.ip_address(self.public_address)
            except ValueError:
                raise InvalidInput(f"public_address: {self.public_address!r} is not an IP address (clients, peers "
                                   "and the fleet certificate use it as one)", "public_address") from None
        if self.shared_cores_min < 0:
            raise InvalidInput("shared_cores_min: must be 0 or more", "shared_cores_min")

    def runtime_for(self, image: str) -> str:
        """The runtime for an image as a client names it (``desktop``) or in full (``dockpool/desktop:latest``)."""
        overrides = dict(self.image_runtimes)
        short = image[len(self.image_prefix):] if image.startswith(self.image_prefix) else image
        return overrides.get(image) or overrides.get(short.split(":", 1)[0]) or self.runtime

    @property
    def ssh_host(self) -> str:
        """The address clients and peers are told to connect to."""
        return self.public_address or self.probe_host

    @property
    def probe_host(self) -> str:
        """Where this host itself reaches a published port."""
        address = ipaddress.ip_address(self.bind_address)
        if address.is_unspecified:
            return "::1" if address.version == 6 else "127.0.0.1"
        return self.bind_address


def policy_from_settings(settings: dict) -> Policy:
    """Build a Policy from plain settings (module parameters or a config file), None meaning default."""
    values = {k: v for k, v in settings.items() if v is not None}
    if "port_range" in values:
        values["port_range"] = PortRange.parse(values["port_range"])
    if "limits" in values:
        values["limits"] = Limits.from_settings(values["limits"])
    if "image_runtimes" in values:
        overrides = values["image_runtimes"]
        if not isinstance(overrides, dict) or not all(isinstance(k, str) for k in overrides):
            raise InvalidInput("image_runtimes: expected a mapping of image names to runtimes "
                               "(desktop: runc, for example)", "image_runtimes")
        values["image_runtimes"] = tuple(sorted(overrides.items()))
    if "capabilities" in values:
        values["capabilities"] = tuple(values["capabilities"])
    known = set(Policy.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise InvalidInput(f"unknown provider settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}", unknown[0])
    return Policy(**values)


DEFAULT_POLICY_FILE = "/etc/dockpool/provider.json"


def load_policy(path: Optional[str] = DEFAULT_POLICY_FILE, overrides: Optional[dict] = None) -> Policy:
    """The provider's settings file (written by provisioning) if it exists, then ``overrides``."""
    settings: dict = {}
    if path and os.path.exists(path):
        settings = read_settings(path, "the provider settings", "policy_file")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if isinstance(given.get("limits"), dict) and isinstance(settings.get("limits"), dict):
        given["limits"] = {**settings["limits"], **given["limits"]}  # overridden limit by limit
    settings.update(given)
    return policy_from_settings(settings)

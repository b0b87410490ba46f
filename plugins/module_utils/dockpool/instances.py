"""Client instances: create, start, stop, remove, list and inspect, through the docker SDK only.

A creation either yields a complete instance (key installed, sshd answering)
or leaves nothing behind: every failure after the container exists removes it,
and ports and cores are never reserved anywhere but on the containers themselves.
"""
from __future__ import annotations

import builtins
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Collection, Optional

from .container_files import find_account, write_authorized_key
from .cputopology import Topology, format_cpulist, read_topology
from .desktop import desktop_password
from .engine import engine_errors
from .errors import CapacityExhausted, Conflict, EngineUnavailable, InvalidInput, Misconfigured, NotFound
from .gpus import read_gpus
from .gvisor import host_pids_limit
from .images import LABEL_VNC_ENV, ImagePort, env_label, key_env, ports_from_image, resolve_image
from .jumpaccess import held_ports, release_ports, write_jump_keys
from .labels import (
    DISK_ENFORCEMENT,
    MANAGED_BY,
    MANAGED_FILTER,
    MANAGER,
    NAME,
    ORIGIN,
    OWNER,
    RUNTIME,
    PublishedPort,
    Record,
    bound_host_ports,
    dedicated_cpus,
    instance_labels,
    instance_view,
    key_owners,
    keyed_records,
    published_ports,
)
from .libraries import docker_sdk, host_counters
from .limits import Limits
from .locking import placement_lock
from .placement import allocate_dedicated, allocate_ports, check_cpu_share, port_is_bindable, shared_pool
from .policy import Policy
from .spec import InstanceSpec, build_spec
from .sshprobe import wait_for_ssh
from .units import human_size
from .usage import held, is_over, measure
from .validation import ID_PATTERN, NAME_PATTERN, key_material

CPU_PERIOD = 100_000  # microseconds; the quota is share * period
# A port probed free under the placement lock can still be taken (as some program's outgoing
# source port) before the engine binds it at start; the creation is then planned again.
PORT_ATTEMPTS = 3
PORT_RETRY_PAUSE = 0.2  # seconds, times the attempt number
_PORT_TAKEN = ("address already in use", "port is already allocated")
_ID = re.compile(ID_PATTERN)
_NAME = re.compile(NAME_PATTERN)


def check_key_owner(spec: InstanceSpec, records: list[Record]) -> None:
    """One key, one client: the jump account matches keys by their material, so a key
    that another client's instance carries (whatever its comment) is refused."""
    if not spec.public_key:
        return
    owner = key_owners(keyed_records(records)).get(key_material(spec.public_key))
    if owner is not None and owner != spec.owner:
        raise Conflict("public_key: this key already belongs to another client's instance on this provider; "
                       "log in with a key of your own", "public_key")


def no_ipv6() -> dict[str, Any]:
    """Instances get no IPv6 at all. The kernel gives every interface a link-local fe80::
    address, and over it an instance reaches other instances and the host's own listeners
    on the bridge, past the firewall's IPv4 rules. Where the host has no IPv6, there is
    nothing to turn off (and Docker would refuse the sysctl)."""
    if not os.path.exists("/proc/sys/net/ipv6"):
        return {}
    return {"sysctls": {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}}


def port_taken(exc: EngineUnavailable) -> bool:
    """The engine could not bind a host port it was given."""
    return any(text in exc.message for text in _PORT_TAKEN)


@dataclass(frozen=True)
class Placement:
    ports: list[PublishedPort]
    cpuset: str


class InstanceManager:
    """The lifecycle of dockpool instances on one engine, under one provider policy."""

    def __init__(
        self,
        client: Any,
        policy: Policy,
        topology: Optional[Topology] = None,
        gpu_count: Optional[Callable[[], int]] = None,
    ) -> None:
        self.client = client
        self.policy = policy
        self.topology = topology or read_topology()
        self.gpu_count = gpu_count or (lambda: len(read_gpus()))
        self._quota: Optional[bool] = None  # can the engine hold a writable layer to a size? (asked once)
        self._runtimes: Optional[set[str]] = None  # the OCI runtimes registered with the engine (asked once)

    def spec(self, params: dict[str, Any], limits: Optional[Limits] = None) -> InstanceSpec:
        """Caller input checked against this provider's policy and hardware, and ``limits`` (the
        provider's unless a client's narrow them)."""
        return build_spec(params, self.policy, host_counters().virtual_memory().total, len(self.topology.logical_cpus),
                          limits)

    # ---- reading -------------------------------------------------------------------------

    def records(self) -> list[Record]:
        with engine_errors("listing instances"):
            summaries = self.client.api.containers(all=True, filters={"label": MANAGED_FILTER})
        return [Record.from_summary(s) for s in summaries]

    def _dedicated_in_use(self, records: list[Record]) -> set[int]:
        return {cpu for record in records for cpu in dedicated_cpus(record.labels)}

    def shared_cpuset(self, records: Optional[list[Record]] = None) -> str:
        records = self.records() if records is None else records
        return format_cpulist(shared_pool(self.topology, self._dedicated_in_use(records)))

    def view(self, record: Record, shared_cpuset: Optional[str] = None) -> dict[str, Any]:
        cpuset = shared_cpuset if shared_cpuset is not None else self.shared_cpuset()
        return instance_view(record, self.policy.ssh_host, cpuset)

    def list(self, owner: Optional[str] = None) -> list[dict[str, Any]]:
        records = self.records()
        cpuset = self.shared_cpuset(records)
        return [self.view(r, cpuset) for r in records if owner is None or r.labels.get(OWNER) == owner]

    def find(self, ref: str) -> Optional[Record]:
        """A dockpool instance by name or id; None when absent. Foreign containers are never returned."""
        if not isinstance(ref, str) or not (_NAME.match(ref) or _ID.match(ref)):
            raise InvalidInput(f"name: {ref!r} is neither an instance name nor an id", "name")
        try:
            with engine_errors(f"looking up instance {ref!r}"):
                attrs = self.client.api.inspect_container(ref)
        except NotFound:
            return None
        record = Record.from_attrs(attrs)
        if not record.managed:
            return None
        return record

    def get(self, ref: str) -> dict[str, Any]:
        record = self.find(ref)
        if record is None:
            raise NotFound(f"instance {ref!r} does not exist", "name")
        return self.view(record)

    def name_taken(self, name: str) -> bool:
        with engine_errors(f"checking whether {name!r} is taken"):
            return bool(self.client.api.containers(all=True, filters={"name": f"^/{re.escape(name)}$"}))

    def _foreign_ports(self) -> set[int]:
        """Host ports held by containers dockpool does not manage (running or not)."""
        ports: set[int] = set()
        with engine_errors("reading the ports of other containers"):
            for summary in self.client.api.containers(all=True):
                if (summary.get("Labels") or {}).get(MANAGED_BY) == MANAGER:
                    continue
                if summary.get("State") == "running":
                    ports.update(p["PublicPort"] for p in summary.get("Ports") or [] if p.get("PublicPort"))
                else:
                    ports |= bound_host_ports(self.client.api.inspect_container(summary["Id"]))
        return ports

    # ---- placement -----------------------------------------------------------------------

    def plan(
        self, spec: InstanceSpec, image_ports: tuple[ImagePort, ...], records: builtins.list[Record], avoid: frozenset = frozenset()
    ) -> Placement:
        """Choose cores and host ports for ``spec`` given the instances that exist now, and
        none of ``avoid`` (ports an earlier attempt of this creation could not bind)."""
        dedicated = self._dedicated_in_use(records)
        if spec.cpus is not None:
            cpus = allocate_dedicated(self.topology, dedicated, spec.cpus, self.policy.shared_cores_min)
            shared = [r.name for r in records if not r.dedicated]
            if shared and not shared_pool(self.topology, dedicated | set(cpus)):
                raise CapacityExhausted(
                    f"cpus: dedicating {spec.cpus} more cores would leave the shared instances "
                    f"({', '.join(sorted(shared))}) without any CPU",
                    "cpus",
                )
            cpuset = format_cpulist(cpus)
        else:
            pool = shared_pool(self.topology, dedicated)
            check_cpu_share(spec.cpu_share or 0, pool)
            cpuset = format_cpulist(pool)
        used = {p.host_port for r in records for p in published_ports(r.labels)} | self._foreign_ports()
        # Held: freed, but an older jump connection of their last owner may still forward there. Safe
        # for that owner only (no other client's key was allowed them), who gets them back first.
        held = held_ports(self.policy)
        own = {port for port, owner in held.items() if owner == spec.owner}
        used |= (set(held) - own) | avoid
        hosts = allocate_ports(
            self.policy.port_range,
            used,
            len(image_ports) + spec.extra_ports,
            port_is_bindable(self.policy.bind_address),
            first=own - avoid,
        )
        ports = [PublishedPort(p.name, p.port, host, p.protocol, p.description) for p, host in zip(image_ports, hosts)]
        # P2PRC's extra ports keep one number inside and out, so a program in the instance knows where to listen.
        ports += [
            PublishedPort(f"extra-{n + 1}", host, host, "tcp", "extra port, same number inside the instance")
            for n, host in enumerate(hosts[len(image_ports) :])
        ]
        return Placement(ports=ports, cpuset=cpuset)

    def _check_gpu(self, spec: InstanceSpec) -> None:
        if spec.gpu and self.gpu_count() == 0:
            raise InvalidInput("gpu: this provider has no NVIDIA GPU (none found through NVML)", "gpu")

    def _check_runtime(self, spec: InstanceSpec) -> None:
        """Refuse before anything is made when the engine does not know the instance's runtime."""
        if self._runtimes is None:
            with engine_errors("reading the engine's runtimes"):
                self._runtimes = set(self.client.api.info().get("Runtimes") or {"runc": {}})
        if spec.runtime not in self._runtimes:
            raise Misconfigured(
                f"runtime: instances of {spec.image!r} run under {spec.runtime!r} here, but this provider's Docker "
                f"engine has no such runtime (it has: {', '.join(sorted(self._runtimes))}); its operator provisions "
                "it with docker_engine_instance_runtime or docker_engine_image_runtimes naming it", "runtime")

    def preview(self, spec: InstanceSpec, start: bool = True) -> dict[str, Any]:
        """What ``create`` would produce, without touching anything (check mode)."""
        image = resolve_image(self.client, spec.image, self.policy.image_prefix)
        self._check_gpu(spec)
        self._check_runtime(spec)
        records = self.records()
        placement = self.plan(spec, ports_from_image(image.attrs), records)
        labels = instance_labels(spec, placement.ports, placement.cpuset)
        record = Record("(not created)", spec.name, labels, "running" if start else "created", "")
        return self.view(record, placement.cpuset if spec.cpus is None else self.shared_cpuset(records))

    # ---- changing ------------------------------------------------------------------------

    def _create_kwargs(self, spec: InstanceSpec, image: Any, placement: Placement, origin: str,
                       vnc_password: Optional[str] = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "image": image.tags[0] if image.tags else image.id,
            "name": spec.name,
            "hostname": spec.name,
            "labels": instance_labels(spec, placement.ports, placement.cpuset, origin),
            "ports": {p.docker_key: (self.policy.bind_address, p.host_port) for p in placement.ports},
            "mem_limit": spec.memory,
            "mem_reservation": spec.memory_reservation,
            "memswap_limit": spec.memory,  # no swap beyond the hard limit
            "cpuset_cpus": placement.cpuset,
            "pids_limit": host_pids_limit(spec.pids_limit, spec.runtime),
            "cap_drop": ["ALL"],
            "cap_add": list(self.policy.capabilities),
            "security_opt": ["no-new-privileges:true"],
            "runtime": spec.runtime,
            "restart_policy": {"Name": "unless-stopped"},
            "init": True,
            **no_ipv6(),
            "log_config": docker_sdk().types.LogConfig(type="json-file", config={"max-size": self.policy.log_max_size, "max-file": "2"}),
            "detach": True,
        }
        environment: dict[str, str] = {}
        variable = key_env(image.attrs)
        if spec.public_key and variable:
            environment.update({variable: spec.public_key, "DOCKPOOL_SSH_USER": spec.ssh_user})
        if vnc_password:
            environment[env_label(image.attrs, LABEL_VNC_ENV) or ""] = vnc_password
        if environment:
            kwargs["environment"] = environment
        if spec.cpu_share is not None:
            kwargs["cpu_period"] = CPU_PERIOD
            kwargs["cpu_quota"] = int(spec.cpu_share * CPU_PERIOD)
        if spec.gpu:
            kwargs["device_requests"] = [docker_sdk().types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
        return kwargs

    def _quota_possible(self) -> bool:
        """Only overlay2 on xfs can cap a writable layer (``--storage-opt size``), and only
        where xfs is mounted with project quotas, which the engine does not report."""
        if self._quota is None:
            with engine_errors("reading the engine's storage driver"):
                info = self.client.api.info()
            backing = dict(pair for pair in info.get("DriverStatus") or [] if len(pair) == 2).get("Backing Filesystem")
            self._quota = info.get("Driver") == "overlay2" and backing == "xfs"
        return self._quota

    def _create_container(self, kwargs: dict[str, Any], spec: InstanceSpec) -> Any:
        """Create the container; a disk limit becomes a filesystem quota where the engine can
        hold one, and is left to the disk watchdog elsewhere (recorded in a label either way)."""
        quota = spec.disk_limit is not None and self._quota_possible()
        if quota:
            kwargs = {**kwargs, "storage_opt": {"size": str(spec.disk_limit)}}
        kwargs["labels"][DISK_ENFORCEMENT] = "quota" if quota else "watchdog"
        try:
            with engine_errors(f"creating instance {spec.name!r}"):
                return self.client.containers.create(**kwargs)
        except EngineUnavailable as exc:
            if not quota or "storage-opt" not in exc.message:
                raise
        self._quota = False  # xfs without project quotas: the watchdog enforces the limit
        kwargs.pop("storage_opt")
        kwargs["labels"][DISK_ENFORCEMENT] = "watchdog"
        with engine_errors(f"creating instance {spec.name!r}"):
            return self.client.containers.create(**kwargs)

    def _rebalance_shared(self) -> None:
        """Give every shared instance exactly the CPUs no instance holds for itself."""
        records = self.records()
        cpuset = self.shared_cpuset(records)
        for record in records:
            if not record.dedicated and cpuset:
                with engine_errors(f"updating the shared cpuset of {record.name}"):
                    self.client.api.update_container(record.id, cpuset_cpus=cpuset)

    def create(
        self,
        spec: InstanceSpec,
        start: bool = True,
        wait: bool = True,
        wait_timeout: float = 30.0,
        origin: str = "ansible",
        admit: Optional[Callable[[InstanceSpec, builtins.list[Record]], InstanceSpec]] = None,
        image_ref: Optional[str] = None,
    ) -> dict[str, Any]:
        """Create (and start) an instance. ``admit``, given the instances that exist, runs
        under the placement lock and may rename the spec or refuse it, so that choices
        depending on the others (a free name, a per-client cap) cannot race. ``image_ref``
        runs another image than the spec's (a moved instance's snapshot) under its name."""
        image = resolve_image(self.client, image_ref or spec.image, self.policy.image_prefix)
        self._check_gpu(spec)
        self._check_runtime(spec)
        image_ports = ports_from_image(image.attrs)
        requested = spec
        lost: frozenset = frozenset()  # ports planned free that the engine then could not bind
        for attempt in range(1, PORT_ATTEMPTS + 1):
            with placement_lock(self.policy.lock_path):
                records = self.records()
                spec = admit(requested, records) if admit is not None else requested
                if self.name_taken(spec.name):
                    raise Conflict(f"name: an instance or container named {spec.name!r} already exists", "name")
                check_key_owner(spec, records)
                placement = self.plan(spec, image_ports, records, lost)
                # A desktop image's VNC password: made here for this instance, returned once, kept nowhere else.
                vnc_password = desktop_password() if env_label(image.attrs, LABEL_VNC_ENV) else None
                container = self._create_container(self._create_kwargs(spec, image, placement, origin, vnc_password),
                                                   spec)
                if spec.cpus is not None:
                    self._rebalance_shared()
            try:
                self._install_key(container, spec, image)
                if start:
                    self._start(container, spec.name, wait, wait_timeout)
            except EngineUnavailable as exc:
                self._discard(container, spec.cpus is not None)
                if attempt < PORT_ATTEMPTS and port_taken(exc):
                    # Planned free, then taken by another program before the engine bound it:
                    # plan again without those ports, after a pause that lets a busy engine settle.
                    lost |= {p.host_port for p in placement.ports}
                    time.sleep(PORT_RETRY_PAUSE * attempt)
                    continue
                raise
            except BaseException:
                self._discard(container, spec.cpus is not None)
                raise
            break
        self.refresh_jump_keys()
        view = self.get(container.id)
        if vnc_password and view.get("desktop"):
            view["desktop"]["vnc_password"] = vnc_password
        return view

    def remove_unstarted(self, origin: str, keep: Collection[str] = ()) -> builtins.list[str]:
        """Remove ``origin``'s instances that were created but never started: what a
        caller killed in the middle of a creation leaves (but those in ``keep``, ids of
        instances that were whole and stopped on purpose). Returns their names."""
        removed = []
        for record in self.records():
            if (record.labels.get(ORIGIN) == origin and record.status == "created" and record.id not in keep
                    and self.remove(record.id)):
                removed.append(record.labels.get(NAME, record.name))
        return removed

    def _install_key(self, container: Any, spec: InstanceSpec, image: Any) -> None:
        """Images that take the key from the environment have it already; others get it written in."""
        by_env = bool(key_env(image.attrs))
        if spec.public_key and (spec.ssh_user != "root" or not by_env):
            with engine_errors(f"installing the SSH key in {spec.name!r}"):
                account = find_account(container, spec.ssh_user, spec.image)  # also: does the user exist?
                if not by_env:  # any image with sshd: write the key into its filesystem
                    write_authorized_key(container, account, spec.public_key)

    def _discard(self, container: Any, dedicated: bool) -> None:
        """Remove a half-made instance; its ports and cores go with it."""
        with engine_errors(f"removing half-made instance {container.name}"):
            container.remove(force=True)
        with placement_lock(self.policy.lock_path):
            if dedicated:
                self._rebalance_shared()
            self._write_jump_keys()

    def _ssh_port(self, record_labels: dict) -> Optional[int]:
        return next(
            (p.host_port for p in published_ports(record_labels) if p.container_port == 22 and p.protocol == "tcp"), None
        )

    def _start(self, container: Any, name: str, wait: bool, wait_timeout: float) -> None:
        # Failures name the runtime: an image can work under runc and fail under gVisor.
        runtime = f"under runtime {container.labels.get(RUNTIME) or 'runc'}"
        with engine_errors(f"starting instance {name!r} {runtime}"):
            container.start()
        port = self._ssh_port(container.labels)
        if wait and port is not None:
            try:
                wait_for_ssh(self.policy.probe_host, port, wait_timeout, alive=lambda: self._running(container))
            except TimeoutError as exc:
                raise EngineUnavailable(f"instance {name!r} started {runtime} but {exc}") from exc
            except ChildProcessError as exc:
                raise InvalidInput(f"instance {name!r} {runtime}: {exc}; its last output: {self._last_log(container)}",
                                   "image") from exc

    def _running(self, container: Any) -> bool:
        with engine_errors("checking an instance"):
            container.reload()
        return container.status in ("running", "created")

    def _last_log(self, container: Any) -> str:
        with engine_errors("reading an instance's log"):
            return container.logs(tail=5).decode("utf-8", "replace").strip()[-500:] or "(nothing)"

    def _container(self, ref: str) -> Any:
        record = self.find(ref)
        if record is None:
            raise NotFound(f"instance {ref!r} does not exist", "name")
        with engine_errors(f"reading instance {ref!r}"):
            return self.client.containers.get(record.id)

    def start(self, ref: str, wait: bool = True, wait_timeout: float = 30.0) -> dict[str, Any]:
        container = self._container(ref)
        if container.status != "running":
            self._check_disk(container.id, ref)
            self._start(container, ref, wait, wait_timeout)
        return self.get(container.id)

    def _check_disk(self, container_id: str, ref: str) -> None:
        """A stopped instance over its disk limit stays stopped: started, it would keep what it must not."""
        for entry in measure(self.client, {"id": container_id}):
            if is_over(entry):
                raise Conflict(f"disk_limit: instance {ref!r} holds {human_size(held(entry))} on disk, over its "
                               f"limit of {human_size(entry['disk_limit'])}, so it is not started: remove it (its files "
                               "go with it), or ask the provider's operator for a larger limit", "disk_limit",
                               {"size_rw": entry["size_rw"], "disk_limit": entry["disk_limit"]})

    def stop(self, ref: str, timeout: int = 10) -> dict[str, Any]:
        """Stop and keep the instance (its disk, ports and cores) for a later start."""
        container = self._container(ref)
        with engine_errors(f"stopping instance {ref!r}"):
            container.stop(timeout=timeout)
        return self.get(container.id)

    def remove(self, ref: str) -> bool:
        """Remove an instance; an instance already gone counts as removed (returns False)."""
        record = self.find(ref)
        if record is None:
            return False
        try:
            with engine_errors(f"removing instance {ref!r}"):
                self.client.api.remove_container(record.id, force=True, v=True)
        except NotFound:
            return False
        with placement_lock(self.policy.lock_path):
            if record.dedicated:
                self._rebalance_shared()
            # The key list first, then the release: a connection that read the old list started before it.
            self._write_jump_keys()
            release_ports([p.host_port for p in published_ports(record.labels)], record.labels.get(OWNER, ""),
                          self.policy)
        return True

    def refresh_jump_keys(self) -> None:
        """Rewrite the jump account's key list from the instances that exist now."""
        if self.policy.jump_keys_file:
            with placement_lock(self.policy.lock_path):
                self._write_jump_keys()

    def _write_jump_keys(self) -> None:
        """The same, for callers that hold the placement lock already (a second flock would wait on itself)."""
        if self.policy.jump_keys_file:
            write_jump_keys(self.records(), self.policy.jump_keys_file, self.policy.probe_host)

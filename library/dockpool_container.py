#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin Ansible adapter over the dockpool core's instance lifecycle."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: dockpool_container
short_description: Manage a dockpool client instance (a limited, SSH-reachable container)
version_added: "0.1.0"
description:
  - Creates, starts, stops and removes a dockpool instance on the local Docker engine through the docker SDK.
  - An instance is a container from a dockpool image with the client's SSH key installed for its login user,
    host ports taken from the provider's port range, memory, CPU, pids and disk limits, and labels from which
    every dockpool caller rebuilds its view.
  - Instances are hardened by default (no-new-privileges, only the capabilities sshd needs, a pids limit,
    no host mounts, restart policy unless-stopped). Password login is never set up.
  - What an instance was given (limits, image, owner, key, GPU, extra ports) is recorded in its labels, which
    Docker cannot change; a difference fails with a message naming each field unless O(recreate=true).
  - Provider settings (port range, bind address, maximum memory...) come from O(policy_file) when it exists,
    overridden by O(provider).
author:
  - dockpool developers (@dockpool)
requirements:
  - docker (Python SDK) >= 7.0
  - psutil
options:
  # BEGIN request options (generated from spec.py: python -m dockpool_dev.module_docs)
  name:
    description:
    - The instance's name, also its container name and hostname (1-63 letters, digits, '.', '_' or '-', starting with
      a letter or digit).
    type: str
    required: true
  image:
    description:
    - An offered dockpool image (the folder name under files/images) or a local image reference; images are never
      pulled.
    - A new instance gets debian-sshd when not given.
    type: str
  owner:
    description:
    - Who the instance belongs to (the API's client name).
    - A new instance gets operator when not given.
    type: str
  public_key:
    description:
    - One OpenSSH public key line, the only authorized key of the login user; options such as command= are refused.
    type: str
  ssh_user:
    description:
    - The login user whose authorized_keys receives the key.
    - A new instance gets the provider's ssh_user when not given.
    type: str
  extra_ports:
    description:
    - Extra TCP ports to publish, each the same number inside and out.
    - A new instance gets 0 when not given.
    type: int
  gpu:
    description:
    - Every NVIDIA GPU of the provider, through a device request.
    - A new instance gets false when not given.
    type: bool
  cpus:
    description:
    - Whole physical cores dedicated to the instance (siblings kept together); without it the instance shares the
      common cores.
    - A new instance gets none (the shared cores) when not given.
    type: int
  cpu_share:
    description:
    - 'Without cpus: the CPUs of the shared pool the instance may use (0.5 is half a CPU).'
    - A new instance gets the provider's default_cpu_share when not given.
    type: float
  memory:
    description:
    - The most memory the instance may use (its hard limit), such as 512m or 2g.
    - A new instance gets the provider's max_memory (or the host's RAM) when not given.
    type: str
  memory_reservation:
    description:
    - The memory kept for the instance when the host runs short (its soft limit), at most memory.
    - A new instance gets the provider's default_memory (at most memory) when not given.
    type: str
  disk_limit:
    description:
    - What the instance may write to its disk, such as 10g; over it the disk watchdog stops it.
    - A new instance gets the provider's default_disk_limit when not given.
    type: str
  pids_limit:
    description:
    - The most processes in the instance.
    - A new instance gets the provider's pids_limit when not given.
    type: int
  runtime:
    description:
    - 'The OCI runtime: runc (the provider''s kernel) or runsc (gVisor, a kernel in user space).'
    - A new instance gets the provider's choice for the image when not given.
    type: str
    choices:
    - runc
    - runsc
  replica:
    description:
    - Keep a copy of the instance's disk on another member of the fleet, refreshed every replica_interval seconds,
      for a restore should this provider stop (replica_all replicates them all).
    - A new instance gets false when not given.
    type: bool
  # END request options
  state:
    description:
      - V(started) creates the instance if needed and makes sure it runs (and its sshd answers when O(wait=true)).
      - V(present) creates it without starting it, and leaves an existing one as it is.
      - V(stopped) stops it and keeps it (disk, ports, cores) for a later start.
      - V(absent) removes it; an instance that does not exist is already absent.
    type: str
    choices: [present, started, stopped, absent]
    default: started
  recreate:
    description:
      - When the existing instance differs in something that cannot change in place, remove it and create
        it anew. Everything inside the instance is lost.
    type: bool
    default: false
  wait:
    description: After starting, wait until the instance's sshd sends its banner on the published port.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for sshd before the instance is removed and the task fails.
    type: int
    default: 30
  policy_file:
    description: The provider's settings file written by provisioning; ignored when it does not exist.
    type: path
    default: /etc/dockpool/provider.json
  provider:
    description:
      - Provider settings overriding O(policy_file).
    type: dict
    suboptions:
      port_range:
        description: Host ports for instances, V(START-END).
        type: str
      bind_address:
        description: Address the published ports listen on (V(0.0.0.0) on providers, V(127.0.0.1) in tests).
        type: str
      public_address:
        description: The provider's public IP address, given to clients in the returned C(ssh) command
          (the dockpool_core role writes C(dockpool_core_public_address) here).
        type: str
      limits:
        description:
          - The provider's limits (default_memory, max_memory, default_disk_limit, max_disk_limit,
            default_cpu_share, max_cpus, max_extra_ports, instances_per_client, pids_limit), as in
            the C(limits) of O(policy_file); see C(dockpool_core_limits).
        type: dict
      shared_cores_min:
        description: Physical cores never dedicated, kept for the host and shared instances.
        type: int
      image_prefix:
        description: Repository prefix of dockpool-built images.
        type: str
      lock_path:
        description: File locked while ports and cores are chosen, shared with the API service.
        type: path
      runtime:
        description: The runtime new instances run under when O(runtime) is omitted.
        type: str
        choices: [runc, runsc]
      image_runtimes:
        description: Images (by name, such as V(desktop)) that run under another runtime than O(provider.runtime).
        type: dict
  docker_host:
    description: The engine's address; defaults to E(DOCKER_HOST) or the local socket.
    type: str
attributes:
  check_mode:
    support: full
    description: Computes the placement and reports what would change without touching the engine.
  diff_mode:
    support: full
    description: Shows the instance's state, limits and key fingerprint before and after.
notes:
  - Ports and cores are chosen under a file lock, so concurrent creations (playbooks, the API) never collide.
  - A failure at any step removes the half-made container, so no port, core or container is left behind.
"""

EXAMPLES = r"""
- name: Give alice an instance with 2 dedicated cores and 4 GiB
  dockpool_container:
    name: alice-provider1-1
    owner: alice
    public_key: "{{ lookup('ansible.builtin.file', 'keys/alice.pub') }}"
    cpus: 2
    memory: 4g
    memory_reservation: 2g
    disk_limit: 20g
    extra_ports: 2

- name: A small shared instance on a test engine, published on loopback only
  dockpool_container:
    name: ci-1
    public_key: "{{ ci_key }}"
    cpu_share: 0.5
    memory: 256m
    provider:
      port_range: 42000-42999
      bind_address: 127.0.0.1

- name: Stop it and keep its disk for later
  dockpool_container:
    name: alice-provider1-1
    state: stopped

- name: Remove it
  dockpool_container:
    name: alice-provider1-1
    state: absent
"""

RETURN = r"""
instance:
  description: The instance after the task (in check mode, the predicted instance); null when absent.
  returned: success
  type: dict
  contains:
    id:
      description: Container id (V((not created)) in check mode).
      type: str
    name:
      description: Instance name.
      type: str
    owner:
      description: Owner label.
      type: str
    image:
      description: Image name as asked.
      type: str
    runtime:
      description: The OCI runtime it runs under, V(runc) or V(runsc) (gVisor).
      type: str
    state:
      description: V(running), V(stopped), V(paused), V(restarting) or V(dead).
      type: str
    ssh:
      description: How to log in; null for an image without port 22.
      type: dict
      contains:
        user:
          description: Login user.
          type: str
        host:
          description: Host to connect to.
          type: str
        port:
          description: Published host port of sshd.
          type: int
        command:
          description: A ready command line.
          type: str
          sample: ssh -p 40000 root@provider1.example.org
    ports:
      description: Every published port with its name, description, container and host port.
      type: list
      elements: dict
    limits:
      description: >-
        cpus, cpuset, cpu_share, memory, memory_reservation (bytes), disk_limit (bytes),
        disk_enforcement (quota or watchdog), pids_limit.
      type: dict
    gpu:
      description: Whether the GPUs were requested.
      type: bool
actions:
  description: What the task did (created, started, stopped, recreated, removed).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dockpool.desired_state import STATES, ensure, ensure_absent
from ansible.module_utils.dockpool.engine import connect
from ansible.module_utils.dockpool.instances import InstanceManager
from ansible.module_utils.dockpool.policy import RUNTIMES, load_policy
from ansible.module_utils.dockpool.request_options import module_options
from ansible.module_utils.dockpool_module import engine_options, run_core

SPEC_FIELDS = tuple(module_options())
PROVIDER_OPTIONS = {
    "port_range": {"type": "str"},
    "bind_address": {"type": "str"},
    "public_address": {"type": "str"},
    "limits": {"type": "dict"},
    "shared_cores_min": {"type": "int"},
    "image_prefix": {"type": "str"},
    "lock_path": {"type": "path"},
    "runtime": {"type": "str", "choices": list(RUNTIMES)},
    "image_runtimes": {"type": "dict"},
}


def main() -> None:
    argument_spec = dict(
        **module_options(),
        state=dict(type="str", default="started", choices=list(STATES)),
        recreate=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=30),
        policy_file=dict(type="path", default="/etc/dockpool/provider.json"),
        provider=dict(type="dict", options=PROVIDER_OPTIONS),
        **engine_options(),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           mutually_exclusive=[("cpus", "cpu_share")])
    params = module.params

    def action() -> dict:
        manager = InstanceManager(connect(params["docker_host"]), load_policy(params["policy_file"], params["provider"]))
        if params["state"] == "absent":
            outcome = ensure_absent(manager, params["name"], module.check_mode)
        else:
            spec = manager.spec({field: params[field] for field in SPEC_FIELDS})
            # As community.docker does: an existing instance is compared only in what the task gives.
            given = {field for field in SPEC_FIELDS if params[field] is not None}
            outcome = ensure(
                manager,
                spec,
                params["state"],
                given=given,
                recreate=params["recreate"],
                check_mode=module.check_mode,
                wait=params["wait"],
                wait_timeout=params["wait_timeout"],
            )
        result = {"changed": outcome.changed, "instance": outcome.instance, "actions": outcome.actions}
        if module._diff:
            result["diff"] = {"before": outcome.before, "after": outcome.after}
        return result

    run_core(module, action)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin Ansible adapter over the dockpool core's hardware reading."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: dockpool_spec_facts
short_description: Read a provider host's hardware as dockpool sees it
version_added: "0.1.0"
description:
  - Returns the host's platform, CPU topology (physical cores, logical CPUs, hyper-threading factor and
    which CPUs are siblings), memory, the disk holding Docker's data root, and every NVIDIA GPU through NVML.
  - A host without GPU or without NVIDIA driver reports an empty GPU list, not an error.
  - A facts module; it never reports a change.
author:
  - dockpool developers (@dockpool)
requirements:
  - psutil
  - nvidia-ml-py (optional; without it no GPU is reported)
options:
  data_root:
    description:
      - Directory whose disk is reported. Defaults to the engine's C(DockerRootDir) when the engine answers,
        else C(/var/lib/docker) (or its nearest existing parent).
    type: path
  docker_host:
    description: The engine's address used to find its data root; defaults to E(DOCKER_HOST) or the local socket.
    type: str
attributes:
  check_mode:
    support: full
    description: Reads only.
  diff_mode:
    support: none
    description: Changes nothing.
  facts:
    support: full
    description: Sets C(dockpool_specs).
"""

EXAMPLES = r"""
- name: Read the provider's hardware
  dockpool_spec_facts:

- name: Install the NVIDIA toolkit only where a GPU exists
  ansible.builtin.include_tasks: nvidia.yml
  when: ansible_facts.dockpool_specs.gpus | length > 0
"""

RETURN = r"""
ansible_facts:
  description: The host's specs.
  returned: always
  type: dict
  contains:
    dockpool_specs:
      description: Hardware and platform of the host.
      type: dict
      contains:
        hostname:
          description: Host name.
          type: str
        platform:
          description: system, distribution, distribution_version, pretty_name, kernel, architecture.
          type: dict
        cpu:
          description: >-
            model, sockets, physical_cores, logical_cpus, threads_per_core (the hyper-threading factor)
            and cores (the logical CPUs of each physical core).
          type: dict
        memory:
          description: total and available, in bytes.
          type: dict
        disk:
          description: path, total and free (bytes) of the disk holding Docker's data.
          type: dict
        gpus:
          description: >-
            One entry per NVIDIA GPU with index, name, uuid, driver, vbios, fan_speed, utilization (gpu, memory),
            temperature, clocks (graphics, memory) and memory (total, used); empty without GPU.
          type: list
          elements: dict
        runsc:
          description: >-
            gVisor's runsc where installed (else null): path, version, and network_arguments, what the engine
            must pass it to start instances here (V(--network=host) where an older runsc misjudges the
            kernel's network namespaces).
          type: dict
        load:
          description: Load averages over 1, 5 and 15 minutes.
          type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dockpool.host_specs import collect_specs, docker_data_root
from ansible.module_utils.dockpool_module import engine_options, run_core


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(data_root=dict(type="path"), **engine_options()),
        supports_check_mode=True,
    )

    def action() -> dict:
        data_root = module.params["data_root"] or docker_data_root(module.params["docker_host"])
        return {"ansible_facts": {"dockpool_specs": collect_specs(data_root)}}

    run_core(module, action)


if __name__ == "__main__":
    main()

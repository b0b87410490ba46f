#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin Ansible adapter over the dockpool core's image folders and builds."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: dockpool_image
short_description: Build a dockpool instance image from a P2PRC-style folder when its content changed
version_added: "0.1.0"
description:
  - Validates an image folder C(NAME/{Dockerfile, ports.json, description.txt}) and builds it as
    C(PREFIX NAME:latest) through the docker SDK, recording its ports and description as image labels.
  - Rebuilds only when the folder's content or the build arguments changed (a source hash kept as a label).
  - Never pulls from a registry; the base image must be local or reachable by the engine's own build.
author:
  - dockpool developers (@dockpool)
requirements:
  - docker (Python SDK) >= 7.0
options:
  path:
    description: The image folder on the managed host.
    type: path
    required: true
  build_args:
    description: Build arguments, such as C(BASE_IMAGE).
    type: dict
    default: {}
  image_prefix:
    description: Repository prefix of the built image.
    type: str
    default: dockpool/
  docker_host:
    description: The engine's address; defaults to E(DOCKER_HOST) or the local socket.
    type: str
attributes:
  check_mode:
    support: full
    description: Reports whether a build would happen without building.
  diff_mode:
    support: full
    description: Shows the source hash before and after.
"""

EXAMPLES = r"""
- name: Build the default instance image on a locally built base
  dockpool_image:
    path: /opt/dockpool/images/debian-sshd
    build_args:
      BASE_IMAGE: local/debian:bookworm
"""

RETURN = r"""
tag:
  description: The image's tag.
  returned: always
  type: str
  sample: dockpool/debian-sshd:latest
image:
  description: name, id, tags, description, ports and source_hash of the image (null in check mode before a build).
  returned: always
  type: dict
source_hash:
  description: Digest of the folder's files and build arguments.
  returned: always
  type: str
previous_hash:
  description: Source hash of the image the tag pointed to before, null when there was none.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dockpool.engine import connect
from ansible.module_utils.dockpool.images import build_image
from ansible.module_utils.dockpool_module import engine_options, run_core


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            build_args=dict(type="dict", default={}),
            image_prefix=dict(type="str", default="dockpool/"),
            **engine_options(),
        ),
        supports_check_mode=True,
    )
    params = module.params

    def action() -> dict:
        build_args = {str(k): str(v) for k, v in params["build_args"].items()}
        result = build_image(
            connect(params["docker_host"]), params["path"], params["image_prefix"], build_args, module.check_mode
        )
        if module._diff:
            result["diff"] = {"before": {"source_hash": result["previous_hash"]}, "after": {"source_hash": result["source_hash"]}}
        return result

    run_core(module, action)


if __name__ == "__main__":
    main()

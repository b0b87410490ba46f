# -*- coding: utf-8 -*-
"""What the dockpool Ansible modules share: the engine options and the mapping
of core errors to ``fail_json``. The core itself never imports Ansible."""
from __future__ import annotations

from typing import Any, Callable

from ansible.module_utils.basic import env_fallback, missing_required_lib
from ansible.module_utils.dockpool.errors import DockpoolError
from ansible.module_utils.dockpool.libraries import MissingLibrary


def engine_options() -> dict[str, dict[str, Any]]:
    return {"docker_host": {"type": "str", "fallback": (env_fallback, ["DOCKER_HOST"])}}


def run_core(module: Any, action: Callable[[], dict[str, Any]]) -> None:
    """Run ``action`` and exit with its result, or fail with the core's message and field."""
    try:
        result = action()
    except MissingLibrary as exc:  # the core imports without docker and psutil; using them needs them
        module.fail_json(msg=missing_required_lib(exc.package), exception=exc.import_traceback)
    except DockpoolError as exc:
        module.fail_json(msg=exc.message, field=exc.field, detail=exc.detail)
    module.exit_json(**result)

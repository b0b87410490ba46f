# -*- coding: utf-8 -*-
"""What the dockpool Ansible modules share: the engine options and the mapping
of core errors to ``fail_json``. The core itself never imports Ansible."""
from __future__ import annotations

import traceback
from typing import Any, Callable

try:
    from ansible.module_utils.dockpool.errors import DockpoolError

    IMPORT_ERROR = None
    MISSING_LIB = None
except ImportError as exc:  # the core needs docker and psutil on the managed host
    DockpoolError = Exception  # type: ignore[misc,assignment]
    IMPORT_ERROR = traceback.format_exc()
    MISSING_LIB = getattr(exc, "name", None) or "docker"


def engine_options() -> dict[str, dict[str, Any]]:
    from ansible.module_utils.basic import env_fallback

    return {"docker_host": {"type": "str", "fallback": (env_fallback, ["DOCKER_HOST"])}}


def require_core(module: Any) -> None:
    """Fail with the standard missing-library message when the core's imports failed."""
    if IMPORT_ERROR is not None:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib(MISSING_LIB), exception=IMPORT_ERROR)


def run_core(module: Any, action: Callable[[], dict[str, Any]]) -> None:
    """Run ``action`` and exit with its result, or fail with the core's message and field."""
    try:
        result = action()
    except DockpoolError as exc:
        module.fail_json(msg=exc.message, field=exc.field, detail=exc.detail)
    module.exit_json(**result)

"""What several integration suites share."""
from __future__ import annotations

import pytest

from support.api_config import TOKENS, make_config
from support.api_process import api_process


@pytest.fixture
def lab_service(tmp_path, engine):
    """A real API process (provider "lab") offering the desktop too; its clients' instances removed after."""
    settings = make_config(tmp_path, images=["debian-sshd", "desktop"], provider_name="lab", limits={"max_memory": "512m"})
    with api_process(tmp_path, settings) as url:
        yield url
    for c in engine.containers.list(all=True, filters={"label": "dockpool.owner"}):
        if c.labels.get("dockpool.owner") in TOKENS:
            c.remove(force=True)

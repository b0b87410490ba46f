"""Fixtures shared by every test: the real engine, real SSH keys, unique names
that are cleaned up, and a provider policy publishing on loopback only."""
from __future__ import annotations

import uuid
from typing import Callable, Iterator

import pytest

from dockpool.engine import connect
from dockpool.errors import DockpoolError
from dockpool.labels import MANAGED_FILTER
from dockpool.policy import Policy, PortRange
from support.api_config import remove_client_instances
from support.ssh import make_keypair

# Tests publish on loopback, in a range of their own.
TEST_PORTS = PortRange(43000, 43999)


@pytest.fixture(scope="session")
def engine():
    try:
        client = connect()
        client.ping()
    except DockpoolError as exc:
        pytest.exit(f"no Docker engine: {exc.message}. Run scripts/setup.sh (or `make test`) first.", returncode=3)
    yield client
    client.close()


@pytest.fixture(scope="session")
def keypair(tmp_path_factory):
    """(private key path, public key line) of the test client."""
    return make_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def other_keypair(tmp_path_factory):
    return make_keypair(tmp_path_factory.mktemp("other-keys"), "id_other")


@pytest.fixture
def cleanup(engine):
    """Remove whatever instance a test made through the API for its clients, by owner label."""
    yield
    remove_client_instances(engine)


@pytest.fixture
def policy() -> Policy:
    return Policy(port_range=TEST_PORTS, bind_address="127.0.0.1", shared_cores_min=0)


@pytest.fixture
def provider_settings() -> dict:
    """The same policy as module parameters."""
    return {"port_range": f"{TEST_PORTS.start}-{TEST_PORTS.end}", "bind_address": "127.0.0.1", "shared_cores_min": 0}


@pytest.fixture
def names(engine, request) -> Iterator[Callable[[str], str]]:
    """Unique instance names for this test; whatever carries them is removed afterwards."""
    made: list[str] = []
    stem = request.node.name.split("[")[0].replace("test_", "")[:20].strip("_-")

    def make(tag: str = "") -> str:
        name = f"t-{stem}-{tag}-{uuid.uuid4().hex[:6]}".replace("--", "-").replace("_", "-")
        made.append(name)
        return name

    yield make
    for name in made:
        for container in engine.containers.list(all=True, filters={"name": f"^/{name}$"}):
            container.remove(force=True)


def managed_ids(engine) -> set[str]:
    return {c["Id"] for c in engine.api.containers(all=True, filters={"label": MANAGED_FILTER})}


@pytest.fixture
def no_leak(engine):
    """Assert that a block leaves no new dockpool container behind: `with no_leak(): ...`."""
    from contextlib import contextmanager

    @contextmanager
    def check():
        before = managed_ids(engine)
        all_before = {c["Id"] for c in engine.api.containers(all=True)}
        images_before = {i["Id"] for i in engine.api.images(all=True)}
        yield
        assert managed_ids(engine) <= before, "a dockpool container was left behind"
        assert {c["Id"] for c in engine.api.containers(all=True)} <= all_before, "a container was left behind"
        assert {i["Id"] for i in engine.api.images(all=True)} <= images_before, "an image was left behind"

    return check

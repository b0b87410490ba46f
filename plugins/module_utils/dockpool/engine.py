"""The Docker engine connection, and the one place its errors become ours."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional

from .errors import Conflict, DockpoolError, EngineUnavailable, NotFound
from .libraries import docker, docker_sdk, requests


def connect(base_url: Optional[str] = None, timeout: int = 120) -> Any:
    """A client for the local engine (DOCKER_HOST or the default socket), API version negotiated."""
    sdk = docker_sdk()
    with engine_errors("connecting to the Docker engine"):
        if base_url:
            client = sdk.DockerClient(base_url=base_url, version="auto", timeout=timeout)
        else:
            client = sdk.from_env(version="auto", timeout=timeout)
    return client


@contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Re-raise engine failures as typed dockpool errors that say what was being done."""
    try:
        yield
    except DockpoolError:
        raise
    except docker.errors.NotFound as exc:
        raise NotFound(f"{action}: {exc.explanation or exc}") from exc
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            raise Conflict(f"{action}: {exc.explanation or exc}") from exc
        raise EngineUnavailable(f"{action}: the Docker engine answered {exc.status_code}: {exc.explanation or exc}") from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineUnavailable(f"{action}: the Docker engine is not reachable ({exc}); is dockerd running?") from exc

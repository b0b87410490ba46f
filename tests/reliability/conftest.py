"""The reliability and security suite: fuzzing, concurrency, faults, attacks.

It runs in CI at a size that fits there; `make reliability` runs it larger and
writes the figures (cases fuzzed, operations, faults, what survived) to
docs/reliability.json, which docs/security.md quotes.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

FIGURES: dict = {}
FUZZ_EXAMPLES = int(os.environ.get("DOCKPOOL_FUZZ_EXAMPLES", "25"))
CONCURRENT = int(os.environ.get("DOCKPOOL_CONCURRENT", "50"))


@pytest.fixture(scope="session")
def figures():
    yield FIGURES
    report = os.environ.get("DOCKPOOL_RELIABILITY_REPORT")
    if report:
        Path(report).write_text(json.dumps(FIGURES, indent=1, sort_keys=True) + "\n")


def all_container_ids(engine) -> set[str]:
    return {c["Id"] for c in engine.api.containers(all=True)}

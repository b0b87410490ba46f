"""The tests' name for dockpool_dev.paths, which the benchmarks share (one copy, in the developers' tools)."""
from dockpool_dev.paths import IMAGES, ROOT, VENV_BIN

__all__ = ["IMAGES", "ROOT", "VENV_BIN"]

"""The tests' name for dockpool_dev.ansible_run, which the benchmarks share (one copy, in the developers' tools)."""
from dockpool_dev.ansible_run import PlayResult, run_playbook, run_playbook_file

__all__ = ["PlayResult", "run_playbook", "run_playbook_file"]

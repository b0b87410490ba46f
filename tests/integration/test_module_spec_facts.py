"""dockpool_spec_facts through ansible-playbook: this host as it is, never a change."""
from __future__ import annotations

import psutil
import pytest

from dockpool.cputopology import read_topology
from support.ansible_run import run_playbook


@pytest.mark.parametrize("check", [False, True])
def test_spec_facts_describe_this_host_and_never_change(tmp_path, engine, check):
    result = run_playbook(tmp_path, [{"dockpool_spec_facts": {}}], check=check)
    assert result.rc == 0 and result.changed == 0
    specs = result.result()["ansible_facts"]["dockpool_specs"]
    topo = read_topology()
    assert specs["cpu"]["physical_cores"] == topo.physical_cores
    assert specs["cpu"]["logical_cpus"] == len(topo.logical_cpus)
    assert specs["cpu"]["threads_per_core"] == topo.threads_per_core
    assert specs["cpu"]["cores"] == [list(c) for c in topo.cores]
    assert specs["memory"]["total"] == psutil.virtual_memory().total
    assert specs["disk"]["path"] == engine.info()["DockerRootDir"]
    assert specs["gpus"] == []  # no NVIDIA GPU on this machine
    assert specs["platform"]["system"] == "linux"



"""The modules as Ansible ships them: ansible-doc renders each, a host without the libraries is told which."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support.ansible_run import run_playbook
from support.paths import ROOT, VENV_BIN


@pytest.mark.parametrize("module", ["dockpool_container", "dockpool_spec_facts", "dockpool_image"])
def test_ansible_doc_renders(module):
    proc = subprocess.run([str(VENV_BIN / "ansible-doc"), "-M", str(ROOT / "library"), "--json", module],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    doc = json.loads(proc.stdout)[module]
    assert doc["doc"]["options"] and doc["examples"].strip() and doc["return"]
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"


def test_a_host_without_the_libraries_gets_ansibles_missing_library_message(tmp_path):
    """The core imports without docker and psutil (dockpool.libraries); the module says which is missing."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    interpreter = {"ansible_python_interpreter": str(bare / "bin" / "python")}
    for task, library in (({"dockpool_image": {"path": str(tmp_path)}}, "docker"), ({"dockpool_spec_facts": {}}, "psutil")):
        result = run_playbook(tmp_path, [task], extra_vars=interpreter)
        assert result.rc != 0, result.raw
        assert f"Failed to import the required Python library ({library})" in result.result()["msg"], result.raw

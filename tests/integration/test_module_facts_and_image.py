"""dockpool_spec_facts and dockpool_image through ansible-playbook; ansible-doc renders every module."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid

import psutil
import pytest

from dockpool.cputopology import read_topology
from support.ansible_run import run_playbook
from support.paths import IMAGES, ROOT, VENV_BIN

pytestmark = pytest.mark.engine


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


@pytest.fixture
def image_folder(tmp_path, engine):
    folder = tmp_path / "debian-sshd"
    shutil.copytree(IMAGES / "debian-sshd", folder)
    prefix = f"dockpool-test-{uuid.uuid4().hex[:6]}/"
    yield folder, prefix
    for image in engine.images.list(name=f"{prefix}debian-sshd"):
        engine.images.remove(image.id, force=True)


def build_task(folder, prefix):
    return {"dockpool_image": {"path": str(folder), "image_prefix": prefix, "build_args": {"BASE_IMAGE": "local/debian:bookworm"}}}


def test_image_builds_once_and_again_only_when_its_folder_changes(tmp_path, engine, image_folder):
    folder, prefix = image_folder
    dry = run_playbook(tmp_path, [build_task(folder, prefix)], check=True)
    assert dry.rc == 0 and dry.changed == 1 and not engine.images.list(name=f"{prefix}debian-sshd")

    built = run_playbook(tmp_path, [build_task(folder, prefix)])
    assert built.rc == 0 and built.changed == 1, built.raw
    image = built.result()["image"]
    assert image["ports"] == [{"name": "SSH", "port": 22, "protocol": "tcp", "description": "SSH login with the client's key"}]
    labels = engine.images.get(f"{prefix}debian-sshd:latest").labels
    assert json.loads(labels["dockpool.image.ports"])[0]["port"] == 22
    assert labels["dockpool.image.description"].startswith("Debian 12")

    assert run_playbook(tmp_path, [build_task(folder, prefix)]).changed == 0
    (folder / "description.txt").write_text("Changed description\n")
    rebuilt = run_playbook(tmp_path, [build_task(folder, prefix)], diff=True)
    assert rebuilt.changed == 1
    assert rebuilt.result()["diff"]["before"]["source_hash"] == image["source_hash"]
    assert engine.images.get(f"{prefix}debian-sshd:latest").labels["dockpool.image.description"] == "Changed description"


def test_invalid_image_folder_names_file_and_field(tmp_path, engine, image_folder):
    folder, prefix = image_folder
    (folder / "ports.json").write_text('{"Port": [{"PortName": "SSH", "InternalPort": "twenty-two"}]}')
    result = run_playbook(tmp_path, [build_task(folder, prefix)])
    assert result.rc != 0
    assert f"{folder}/ports.json: Port[0].InternalPort: must be an integer from 1 to 65535" in result.result()["msg"]
    assert not engine.images.list(name=f"{prefix}debian-sshd")


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

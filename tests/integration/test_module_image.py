"""dockpool_image through ansible-playbook: builds once, again only when its folder changes."""
from __future__ import annotations

import json
import shutil
import uuid

import pytest

from support.ansible_run import run_playbook
from support.paths import IMAGES


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



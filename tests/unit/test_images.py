import json
import shutil

import pytest

from dockpool.errors import InvalidInput
from dockpool.images import (
    LABEL_PORTS,
    ImagePort,
    base_reference,
    folder_hash,
    image_labels,
    parse_ports_json,
    ports_from_image,
    read_image_folder,
)
from support.paths import IMAGES


def ports(*entries):
    return json.dumps({"Port": list(entries)})


SSH = {"PortName": "SSH", "InternalPort": 22, "Type": "tcp", "Description": "SSH Port"}


def test_p2prc_file_without_optional_fields():
    assert parse_ports_json(ports(SSH)) == (ImagePort("SSH", 22, "tcp", "SSH Port"),)


def test_full_p2prc_entry_and_quoted_port():
    entry = dict(SSH, InternalPort="6901", PortName="noVNC", ExternalPort=0, IsUsed=False, Type="TCP")
    assert parse_ports_json(ports(entry)) == (ImagePort("noVNC", 6901, "tcp", "SSH Port"),)


@pytest.mark.parametrize(
    "text, field, words",
    [
        ("{", "Port", "not valid JSON"),
        ("[]", "Port", '"Port" list'),
        (ports("x"), "Port[0]", "must be an object"),
        (ports(dict(SSH, PortName="")), "Port[0].PortName", "non-empty"),
        (ports(SSH, dict(SSH, InternalPort=0)), "Port[1].InternalPort", "1 to 65535"),
        (ports(dict(SSH, InternalPort=70000)), "Port[0].InternalPort", "1 to 65535"),
        (ports(dict(SSH, InternalPort=True)), "Port[0].InternalPort", "1 to 65535"),
        (ports(dict(SSH, Type="sctp")), "Port[0].Type", "tcp, udp"),
        (ports(dict(SSH, Description=5)), "Port[0].Description", "string"),
        (ports(dict(SSH, IsUsed="yes")), "Port[0].IsUsed", "bool"),
        (ports(SSH, SSH), "Port[1].InternalPort", "declared twice"),
    ],
)
def test_errors_name_the_file_and_the_field(text, field, words):
    with pytest.raises(InvalidInput) as info:
        parse_ports_json(text, "imgs/x/ports.json")
    assert info.value.field == field
    assert words in info.value.message
    assert info.value.message.startswith("imgs/x/ports.json")


def test_shipped_image_folders_are_valid():
    for folder in IMAGES.iterdir():
        image = read_image_folder(str(folder))
        assert image.description
        assert any(p.port == 22 for p in image.ports), f"{folder.name} has no SSH port"


def test_folder_missing_a_file(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(InvalidInput) as info:
        read_image_folder(str(folder))
    assert "ports.json, description.txt" in info.value.message


@pytest.mark.parametrize("name", ["Upper", "with space", ".."])
def test_folder_name_must_be_an_image_name(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    with pytest.raises(InvalidInput):
        read_image_folder(str(folder))


def test_folder_hash_follows_content_mode_and_build_args(tmp_path):
    folder = tmp_path / "debian-sshd"
    shutil.copytree(IMAGES / "debian-sshd", folder)
    first = folder_hash(str(folder), {"BASE_IMAGE": "a"})
    assert folder_hash(str(folder), {"BASE_IMAGE": "a"}) == first
    assert folder_hash(str(folder), {"BASE_IMAGE": "b"}) != first
    (folder / "description.txt").write_text("changed\n")
    second = folder_hash(str(folder), {"BASE_IMAGE": "a"})
    assert second != first
    (folder / "description.txt").chmod(0o600)
    assert folder_hash(str(folder), {"BASE_IMAGE": "a"}) != second


def test_labels_carry_ports_back_unchanged():
    image = read_image_folder(str(IMAGES / "debian-sshd"))
    labels = image_labels(image, "abc")
    assert ports_from_image({"Config": {"Labels": labels}}) == image.ports


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"ExposedPorts": {"22/tcp": {}}}, (ImagePort("SSH", 22, "tcp", ""),)),
        ({"ExposedPorts": {"8080/tcp": {}, "53/udp": {}}}, (ImagePort("53/udp", 53, "udp", ""), ImagePort("8080/tcp", 8080, "tcp", ""))),
        ({"Labels": {LABEL_PORTS: "not json"}, "ExposedPorts": {"22/tcp": {}}}, (ImagePort("SSH", 22, "tcp", ""),)),
        ({}, ()),
    ],
)
def test_images_without_labels_fall_back_to_expose(config, expected):
    assert ports_from_image({"Config": config}) == expected


def test_base_reference_follows_arg_defaults_and_build_arguments():
    text = "# c\nARG SSHD_IMAGE=dockpool/debian-sshd:latest\nFROM ${SSHD_IMAGE}\nARG LATER=x\nFROM other\n"
    assert base_reference(text) == "dockpool/debian-sshd:latest"
    assert base_reference(text, {"SSHD_IMAGE": "mine/sshd:1"}) == "mine/sshd:1"
    assert base_reference("ARG BASE_IMAGE\nFROM --platform=linux/amd64 $BASE_IMAGE AS build\n", {"BASE_IMAGE": "b:1"}) == "b:1"
    assert base_reference("FROM scratch\n") == "scratch"
    assert base_reference("RUN true\n") is None



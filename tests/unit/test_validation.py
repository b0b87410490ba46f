import base64
import subprocess

import pytest

from dockpool.errors import InvalidInput
from dockpool.validation import key_fingerprint, validate_image_ref, validate_name, validate_public_key
from support.keys import ED25519, RSA_1024, RSA_3072, blob


@pytest.mark.parametrize("name", ["a", "alice-provider1-1", "web_2.test", "A1", "x" * 63])
def test_names_accepted(name):
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "-lead", ".hidden", "a/b", "../etc", "a b", "a;rm -rf /", "$(id)", "a`b`", "x" * 64, "a\nb", "naïve", None, 5],
)
def test_names_with_separators_or_metacharacters_refused(name):
    with pytest.raises(InvalidInput) as info:
        validate_name(name, "name")
    assert info.value.field == "name"


@pytest.mark.parametrize("ref", ["debian-sshd", "dockpool/debian-sshd:latest", "local/debian:bookworm", "a.b_c-d/e:1.0"])
def test_image_refs_accepted(ref):
    assert validate_image_ref(ref) == ref


@pytest.mark.parametrize(
    "ref", ["", "Debian", "../../etc/passwd", "a/../b", "registry:5000/x", "x@sha256:abc", "a b", "a;b", "/abs", "a//b", None]
)
def test_image_refs_refused(ref):
    with pytest.raises(InvalidInput):
        validate_image_ref(ref)


def test_real_key_from_ssh_keygen_is_accepted_and_fingerprint_matches_openssh(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    line = (tmp_path / "k.pub").read_text()
    assert validate_public_key(line) == line.strip()
    openssh = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True)
    assert key_fingerprint(line.strip()) == openssh.stdout.split()[1]


@pytest.mark.parametrize("key", [ED25519, RSA_3072, "  " + ED25519 + "  "])
def test_keys_accepted(key):
    assert validate_public_key(key) == key.strip()


@pytest.mark.parametrize(
    "key, why",
    [
        ("", "required"),
        ("ssh-ed25519", "missing"),
        ("ssh-dss " + blob(b"ssh-dss", b"x"), "not accepted"),
        ('command="rm -rf /" ' + ED25519, "not accepted"),
        ("ssh-ed25519 not-base64!!", "base64"),
        ("ssh-ed25519 " + blob(b"ssh-rsa", b"x"), "does not match"),
        (ED25519 + "\nssh-ed25519 " + blob(b"ssh-ed25519", b"\x02" * 32), "one line"),
        (RSA_1024, "2048"),
        ("ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\xffabc").decode(), "base64"),
        (ED25519 + "\x07bell", "control"),
    ],
)
def test_malformed_keys_refused_with_reason(key, why):
    with pytest.raises(InvalidInput) as info:
        validate_public_key(key)
    assert info.value.field == "public_key"
    assert why in info.value.message

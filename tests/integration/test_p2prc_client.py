"""P2PRC's own Go client, replayed byte for byte against the real API process.

Its source (client/container.go) builds the URL by concatenation, with nothing encoded:
``"http://" + IP + "/startcontainer?ports=" + n + "&GPU=" + gpu + "&ContainerName=" + name +
"&BaseImage=" + base + "&PublicKey=" + base64.StdEncoding(key file content)``, and
``"http://" + IP + "/RemoveContainer?id=" + ID``; Go's http.Get sends the query as written
and no Authorization header. The keys below make every character of the base64 alphabet
appear in what is sent, '+' and '/' included; each must log in to the instance it made."""
from __future__ import annotations

import base64
import json
import random
import socket
import string
from pathlib import Path

import pytest

from support.api_config import make_config
from support.api_process import api_process
from support.ssh import make_keypair, ssh_run

pytestmark = pytest.mark.engine
ALPHABET = set(string.ascii_letters + string.digits + "+/")
# The lab's limits narrow the provider's (a provider of the test's, with room for 5 per client).
LAB_LIMITS = {"default_memory": "96m", "max_memory": "128m", "max_cpus": 1, "max_extra_ports": 1, "instances_per_client": 5,
              "default_disk_limit": "1g", "max_disk_limit": "1g"}
PROVIDER_LIMITS = {"instances_per_client": 5}


def go_get(url_host: str, path: str, source: str = "127.0.0.1") -> tuple[int, bytes]:
    """What Go's http.Get sends for ``http://url_host + path``: the path as written."""
    host, port = url_host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=180, source_address=(source, 0)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {url_host}\r\nUser-Agent: Go-http-client/1.1\r\n"
                     "Accept-Encoding: gzip\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):  # bounded: the server closes (Connection: close)
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def start_url(key_file_content: str) -> str:
    encoded = base64.b64encode(key_file_content.encode()).decode()  # b64.StdEncoding.EncodeToString
    return ("/startcontainer?ports=" + "0" + "&GPU=" + "false" + "&ContainerName=" + "debian-sshd" + "&BaseImage=" + ""
            + "&PublicKey=" + encoded)


def keys_covering_the_alphabet(directory) -> list[tuple[Path, str]]:
    """Key pairs (at most five) whose .pub files, comments chosen here, base64-encode to every character."""
    rng, covered, keys = random.Random(12), set(), []
    while not ALPHABET <= covered and len(keys) < 5:
        private, line = make_keypair(directory, f"p2prc{len(keys)}")
        kind, blob, _comment = line.split(" ", 2)
        best = max((f"{kind} {blob} " + "".join(rng.choice(string.printable[:94]) for _ in range(48)) + "\n"
                    for _ in range(3000)), key=lambda text: len(set(base64.b64encode(text.encode()).decode()) - covered))
        (directory / f"p2prc{len(keys)}.pub").write_text(best)
        covered |= set(base64.b64encode(best.encode()).decode())
        keys.append((private, best))
    assert ALPHABET <= covered, sorted(ALPHABET - covered)
    return keys


def test_p2prc_s_client_as_it_really_sends_creates_logs_in_and_removes(tmp_path, engine):
    settings = make_config(tmp_path, limits=PROVIDER_LIMITS,
                           p2prc_networks=[{"network": "127.0.0.0/8", "client": "p2prc", "limits": LAB_LIMITS}])
    keys = keys_covering_the_alphabet(tmp_path)
    with api_process(tmp_path, settings) as url:
        host = url.removeprefix("http://")
        try:
            for private, content in keys:
                status, body = go_get(host, start_url(content))
                assert status == 200, body
                vm = json.loads(body)
                assert vm["SSHPublicKey"] == content  # the key arrived whole: '+' is not a space
                ssh_port = next(p["ExternalPort"] for p in vm["Ports"]["Port"] if p["InternalPort"] == 22)
                login = ssh_run(private, ssh_port, "cat /proc/1/cgroup >/dev/null && echo in")
                assert login.returncode == 0 and login.stdout.strip() == "in", login.stderr
                made = engine.containers.get(vm["ID"])
                assert made.labels["dockpool.owner"] == "p2prc"  # the trusted network's client ...
                assert made.attrs["HostConfig"]["MemoryReservation"] == 96 * 2**20  # ... with its own limits
            status, body = go_get(host, "/RemoveContainer?id=" + vm["ID"])
            assert (status, body) == (200, b"success")
        finally:
            for c in engine.containers.list(all=True, filters={"label": "dockpool.owner=p2prc"}):
                c.remove(force=True)


def test_without_the_opt_in_or_from_elsewhere_p2prc_s_client_is_refused_and_nothing_else_opens(tmp_path, engine):
    content = make_keypair(tmp_path)[1] + "\n"  # the key file as P2PRC reads it
    # Trusted: only 127.0.0.2. The same request from 127.0.0.1 needs a token, as everything else does.
    settings = make_config(tmp_path, limits=PROVIDER_LIMITS,
                           p2prc_networks=[{"network": "127.0.0.2/32", "client": "lab", "limits": LAB_LIMITS}])
    before = {c.id for c in engine.containers.list(all=True)}
    with api_process(tmp_path, settings) as url:
        host = url.removeprefix("http://")
        status, body = go_get(host, start_url(content), source="127.0.0.1")
        assert status == 401 and json.loads(body)["field"] == "Authorization"
        for path in ("/v1/instances", "/RemoveContainer?id=x"):
            status, _ = go_get(host, path, source="127.0.0.1")
            assert status == 401
        status, _ = go_get(host, "/v1/instances", source="127.0.0.2")  # trusted for P2PRC's two routes only
        assert status == 401
        status, body = go_get(host, "/startcontainer?ports=9&GPU=false&ContainerName=debian-sshd&BaseImage=&PublicKey="
                              + base64.b64encode(content.encode()).decode(), source="127.0.0.2")
        assert status == 400 and json.loads(body)["field"] == "extra_ports"  # the network's limits: at most 1
    assert {c.id for c in engine.containers.list(all=True)} == before  # nothing made


@pytest.mark.parametrize(("entry", "field"), [
    ({"network": "10.0.0.0/33", "client": "lab"}, "p2prc_networks[0].network"),
    ({"network": "10.0.0.0/8", "client": "alice"}, "p2prc_networks[0].client"),  # a token client's name
    ({"network": "10.0.0.0/8", "client": "lab", "limits": {"max_memory": "lots"}}, "p2prc_networks[0].limits.max_memory"),
    ({"network": "10.0.0.0/8", "client": "lab", "everyone": True}, "p2prc_networks[0]"),
])
def test_trusted_network_settings_are_checked_naming_the_field(tmp_path, entry, field):
    from dockpool.errors import InvalidInput
    from dockpool_api.config import config_from_dict

    with pytest.raises(InvalidInput) as refused:
        config_from_dict(make_config(tmp_path, p2prc_networks=[entry]))
    assert refused.value.field == field, refused.value.message

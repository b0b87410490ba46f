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
import os
import random
import socket
import string
import subprocess
from pathlib import Path

import pytest
import requests

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
            status, body = go_get(host, path, source="127.0.0.1")
            assert status == 401
        assert "nothing was removed" in json.loads(body)["error"]  # P2PRC's client prints "Success" whatever the status
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


# ---- P2PRC's current client (upstream, since April 2025): its table, its specs, its defaults ------------

# The Go types of P2PRC's p2p.IpAddress, which its client decodes every table into: a field of
# another JSON type fails Go's decoder (and reads as its zero value: every entry "not behind NAT").
GO_PEER_TYPES = {"Name": str, "MachineUsername": str, "IPV4": str, "IPV6": str, "Latency": int, "Download": (int, float),
                 "Upload": (int, float), "ServerPort": str, "UDPServerPort": str, "BareMetalSSHPort": str, "NAT": bool,
                 "EscapeImplementation": str, "ProxyServer": bool, "UnSafeMode": bool, "PublicKey": str,
                 "CustomInformation": str}


def assert_go_decodes(table: dict) -> None:
    """Decode as Go's encoding/json does into P2PRC's IpAddresses, strictly: every field P2PRC
    knows has its Go type (a time.Duration is an integer of ns; a bool is not 0 or "False")."""
    for entry in table["ip_address"]:
        for name, kind in GO_PEER_TYPES.items():
            value = entry[name]
            assert isinstance(value, kind) and (kind is bool or not isinstance(value, bool)), (name, value)


def go_post_table(url_host: str, table_file: str, content: bytes) -> tuple[int, bytes]:
    """What P2PRC's clientIPTable.UploadMultipartFile sends: Go's multipart writer over an io.Pipe
    (so the body goes chunked), the table file as the form file "json" named by its path."""
    boundary = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="json"; filename="{table_file}"\r\n'
             "Content-Type: application/octet-stream\r\n\r\n".encode(), content, f"\r\n--{boundary}--\r\n".encode()]
    host, port = url_host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(f"POST /IpTable HTTP/1.1\r\nHost: {url_host}\r\nUser-Agent: Go-http-client/1.1\r\n"
                     f"Transfer-Encoding: chunked\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                     "Accept-Encoding: gzip\r\nConnection: close\r\n\r\n".encode())
        for part in parts:
            sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):  # bounded: the server closes (Connection: close)
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def p2prc_entry(**values) -> dict:
    """One entry as P2PRC's WriteIpTable writes it (json.MarshalIndent of p2p.IpAddress: every field, in order)."""
    entry = {"Name": "", "MachineUsername": "", "IPV4": "", "IPV6": "", "Latency": 0, "Download": 0, "Upload": 0,
             "ServerPort": "", "UDPServerPort": "", "BareMetalSSHPort": "", "NAT": False, "EscapeImplementation": "",
             "ProxyServer": False, "UnSafeMode": False, "PublicKey": "", "CustomInformation": ""}
    return {**entry, **values}


def test_a_table_from_p2prc_s_current_client_is_taken_and_answered_in_the_types_it_decodes(tmp_path):
    """Booleans for NAT and ProxyServer (and still P2PRC's older "True"/"False"), Latency as Go's
    integer of ns, CustomInformation null and fields dockpool does not know: taken, not refused whole.
    Peers only on loopback here: every other address is never asked."""
    loopback_only = {"peer_networks": ["127.0.0.0/8"], "peer_deny_networks": [],
                     "peer_sources": ["127.0.0.1/32"]}  # P2PRC's client sends no token
    peer_dir, provider_dir = tmp_path / "peer", tmp_path / "provider"
    peer_dir.mkdir(), provider_dir.mkdir()
    with api_process(peer_dir, make_config(peer_dir, provider_name="peer", **loopback_only)) as peer_url, \
            api_process(provider_dir, make_config(provider_dir, **loopback_only)) as url:
        peer_port = peer_url.rsplit(":", 1)[1]
        table = {"ip_address": [
            p2prc_entry(Name="gpu-box-1a2b3c4", IPV4="127.0.0.1", ServerPort=peer_port, Latency=48211873, Download=12.5,
                        NAT=True, EscapeImplementation="FRP", ProxyServer=True, CustomInformation="render farm"),
            # P2PRC's shipped p2p/ip_table.json (its older spelling), with a fraction of a ns and a field of its own.
            {"Name": "Node1", "IPV4": "198.51.100.7", "IPV6": "", "Latency": 1.5, "Download": 0, "Upload": 0,
             "ServerPort": "8078", "NAT": "False", "EscapeImplementation": "", "CustomInformation": None,
             "CustomInformationKey": "c2VjcmV0"},
        ]}
        content = json.dumps(table, indent=1).encode()  # MarshalIndent(i, "", " ")
        status, body = go_post_table(url.removeprefix("http://"), "/home/u/p2prc/p2p/iptable/ip_table.json", content)
        assert status == 200, body
        answered = json.loads(body)
        assert_go_decodes(answered)
        peer = next(e for e in answered["ip_address"] if e["Name"] == "gpu-box-1a2b3c4")
        assert (peer["NAT"], peer["ProxyServer"], peer["Latency"]) == (True, True, 48211873)
        assert peer["CustomInformation"] == "render farm" and "CustomInformationKey" not in peer
        assert "198.51.100.7" not in {e["IPV4"] for e in answered["ip_address"]}  # outside peer_networks: never asked
        listed = requests.get(f"{url}/v1/peers", timeout=10).json()
        assert_go_decodes(listed)
        assert listed["ip_address"][0]["NAT"] is False  # this provider's own entry


def test_server_info_answers_p2prc_s_gpu_strings_and_v1_specs_keeps_numbers(tmp_path):
    """P2PRC's Gpu structs hold nvidia-smi's text ("30 %", "41 C", "1395 MHz"); NVML is faked at its
    one seam (a pynvml module on the real service's path), the rest of the service is real."""
    gpus = [{"fan": 30, "util": [12, 5], "temp": 41, "clocks": {"0": 1395, "2": 9751}},
            {"fan": "NVMLError"}]  # a passive card: no fan reading
    tests = Path(__file__).parents[1]  # the shim, and the tests' support package it fakes NVML with
    env = {"PYTHONPATH": os.pathsep.join(map(str, (tests / "support" / "pynvml_shim", tests))),
           "DOCKPOOL_FAKE_GPUS": json.dumps(gpus)}
    with api_process(tmp_path, make_config(tmp_path), env=env) as url:
        info = requests.get(f"{url}/server_info", timeout=30).json()
        specs = requests.get(f"{url}/v1/specs", timeout=30).json()
    assert info["GPU"] == {"DriveVersion": "550.54.14", "Gpu": {
        "GpuName": "NVIDIA GeForce RTX 3090", "BiosVersion": "94.02.42.00.A9", "FanSpeed": "30 %",
        "Utilization": {"GpuUsage": "12 %", "MemoryUsage": "5 %"}, "Temperature": {"GpuTemp": "41 C"},
        "Clock": {"GpuClock": "1395 MHz", "GpuMemClock": "9751 MHz"}}}
    first, second = specs["gpus"]
    assert (first["fan_speed"], first["utilization"], first["temperature"]) == (30, {"gpu": 12, "memory": 5}, 41)
    assert first["clocks"] == {"graphics": 1395, "memory": 9751} and second["fan_speed"] is None


def p2prc_key_pair(directory: Path) -> tuple[Path, str]:
    """What `p2prc` makes on its first run (config/generate.MakeSSHKeyPair): RSA-1024, the private key
    as PEM in p2prc.privateKey, the public one as ssh.MarshalAuthorizedKey in p2prc.publicKey."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private = directory / "p2prc.privateKey"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + "\n"
    (directory / "p2prc.publicKey").write_text(public)
    return private, public


def test_p2prc_s_stock_defaults_get_an_instance_or_a_way_forward(tmp_path, engine):
    """Its default image name is an alias of the provider's default image; its RSA-1024 key is refused
    with the command that makes one P2PRC reads, which then logs in; a refused RemoveContainer (which
    P2PRC's client reports as a success) says that nothing was removed."""
    home = tmp_path / "p2prc"  # $P2PRC: where P2PRC keeps its config and keys
    home.mkdir()
    _private, weak = p2prc_key_pair(home)
    settings = make_config(tmp_path, limits=PROVIDER_LIMITS,
                           p2prc_networks=[{"network": "127.0.0.0/8", "client": "p2prc", "limits": LAB_LIMITS}])
    before = {c.id for c in engine.containers.list(all=True)}
    with api_process(tmp_path, settings) as url:
        host = url.removeprefix("http://")
        try:
            status, body = go_get(host, start_url(weak).replace("debian-sshd", "docker-ubuntu-sshd"))
            refused = json.loads(body)
            assert status == 400 and refused["field"] == "PublicKey", body
            assert {c.id for c in engine.containers.list(all=True)} == before  # nothing made
            command = refused["detail"]["run"]
            assert command in refused["error"] and "ssh-keygen -t ed25519" in command and "p2prc.publicKey" in command
            made = subprocess.run(["bash", "-c", command], env={**os.environ, "P2PRC": str(home)}, capture_output=True,
                                  text=True, timeout=60, stdin=subprocess.DEVNULL)
            assert made.returncode == 0, made.stderr
            strong = (home / "p2prc.publicKey").read_text()
            assert strong.startswith("ssh-ed25519 ")
            status, body = go_get(host, start_url(strong).replace("debian-sshd", "docker-ubuntu-sshd"))
            assert status == 200, body
            vm = json.loads(body)
            assert vm["TagName"] == "debian-sshd"  # the alias's image
            ssh_port = next(p["ExternalPort"] for p in vm["Ports"]["Port"] if p["InternalPort"] == 22)
            login = ssh_run(home / "p2prc.privateKey", ssh_port, "echo in")
            assert login.returncode == 0 and login.stdout.strip() == "in", login.stderr
            for path in ("/RemoveContainer?id=" + "0" * 12, "/RemoveContainer?id="):
                status, body = go_get(host, path)
                assert status in (400, 404) and "nothing was removed" in json.loads(body)["error"], body
            status, body = go_get(host, "/RemoveContainer?id=" + vm["ID"], source="127.0.0.1")
            assert (status, body) == (200, b"success")
        finally:
            for c in engine.containers.list(all=True, filters={"label": "dockpool.owner=p2prc"}):
                c.remove(force=True)


def test_p2prc_image_aliases_default_to_the_default_image_and_are_checked(tmp_path):
    from dockpool.errors import InvalidInput
    from dockpool_api.config import config_from_dict

    assert config_from_dict(make_config(tmp_path, images=["ubuntu-sshd", "debian-sshd"])).p2prc_image_aliases == {
        "docker-ubuntu-sshd": "ubuntu-sshd"}  # the provider's default image, whatever it is
    assert config_from_dict(make_config(tmp_path, p2prc_image_aliases={"docker-ubuntu-sshd": ""})).p2prc_image_aliases == {}
    offered = make_config(tmp_path, images=["docker-ubuntu-sshd", "debian-sshd"])  # P2PRC's name offered as is
    assert config_from_dict(offered).p2prc_image_aliases == {}
    for aliases, field in (({"docker-ubuntu-sshd": "desktop"}, "p2prc_image_aliases.docker-ubuntu-sshd"),
                           ({"debian-sshd": "debian-sshd"}, "p2prc_image_aliases.debian-sshd"),
                           ({"Bad Name": "debian-sshd"}, "p2prc_image_aliases.Bad Name")):
        with pytest.raises(InvalidInput) as refused:
            config_from_dict(make_config(tmp_path, p2prc_image_aliases=aliases))
        assert refused.value.field == field, refused.value.message

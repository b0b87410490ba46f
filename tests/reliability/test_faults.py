"""Faults injected into real components: the service killed with SIGKILL mid-creation,
a Docker engine stopped under the running service, the watchdog killed while it writes,
corrupt state files, endless and huge bodies. Each outcome is asserted."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
import psutil
import pytest
import requests

from dockpool.atomicfile import read_json
from dockpool.container_files import Account, read_file, write_authorized_key
from dockpool.errors import EngineUnavailable
from dockpool.images import build_image, list_images, resolve_image
from dockpool.labels import MANAGED_FILTER, OWNER
from support.ansible_run import run_playbook
from support.api_config import TOKENS, make_config
from support.api_process import api_process, free_port, wait_until_up
from support.paths import ROOT
from support.ssh import ssh_run

pytestmark = pytest.mark.engine
HEADERS = {"Authorization": f"Bearer {TOKENS['alice']}"}


def service_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "dockpool_api", "--config", str(config)]


def start_service(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(service_command(config), stdout=open(log, "a"), stderr=subprocess.STDOUT)


def alice_instances(engine) -> list[dict]:
    return [c for c in engine.api.containers(all=True, filters={"label": [MANAGED_FILTER, f"{OWNER}=alice"]})]


def test_service_killed_mid_creation_leaves_only_complete_instances(tmp_path, engine, keypair, figures):
    settings = make_config(tmp_path, threads=8, limits={"instances_per_client": 12, "default_memory": "32m",
                                                        "max_memory": "64m", "default_cpu_share": 0.05})
    port = free_port()
    config = tmp_path / "api.json"
    config.write_text(json.dumps({"listen": "127.0.0.1", "port": port, **settings}))
    url = f"http://127.0.0.1:{port}"
    kills, half_made = 0, 0
    try:
        for _round in range(3):
            service = start_service(config, tmp_path / "api.log")
            wait_until_up(url)

            def create() -> None:
                try:
                    requests.post(f"{url}/v1/instances", json={"public_key": keypair[1]}, headers=HEADERS, timeout=60)
                except requests.RequestException:
                    pass  # the service dies under this request

            present = len(alice_instances(engine))
            threads = [threading.Thread(target=create) for _ in range(4)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 30  # kill only once creations are under way on the engine
            while len(alice_instances(engine)) == present and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(random.uniform(0, 0.3))
            service.send_signal(signal.SIGKILL)  # no clean-up of any kind
            service.wait()
            kills += 1
            for thread in threads:
                thread.join(timeout=90)
            half_made += sum(1 for c in alice_instances(engine) if c["State"] == "created")
        service = start_service(config, tmp_path / "api.log")  # the restart removes the unstarted ones
        wait_until_up(url)
        listed = requests.get(f"{url}/v1/instances", headers=HEADERS, timeout=60).json()["instances"]
        on_engine = alice_instances(engine)
        assert all(c["State"] == "running" for c in on_engine), [(c["Names"], c["State"]) for c in on_engine]
        assert {v["id"] for v in listed} == {c["Id"] for c in on_engine}  # complete and listed, or absent
        for view in listed:  # complete means usable; one started just before the kill may still be booting sshd
            deadline = time.monotonic() + 20
            while (login := ssh_run(keypair[0], view["ssh"]["port"], "true")).returncode != 0 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert login.returncode == 0, login.stderr
        figures["kill_during_creation"] = {"kills": kills, "creations_started": 4 * kills, "half_made_found": half_made,
                                           "complete_survived": len(listed), "lost_or_left": 0}
        service.terminate()
        service.wait(timeout=10)
    finally:
        for c in alice_instances(engine):
            engine.api.remove_container(c["Id"], force=True)


@pytest.fixture
def private_engine(tmp_path):
    """A second, private dockerd, so this test can stop it freely: its own root, socket and,
    above all, network namespace (on the host's it would take docker0 away from the real engine)."""
    root = Path("/var/tmp") / f"dockpool-private-engine-{os.getpid()}"
    socket_path = root / "docker.sock"
    namespace = f"dockpool-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    # nsenter enters the network namespace only; `ip netns exec` would also remount /sys and hide the cgroups.
    argv = ["nsenter", f"--net=/var/run/netns/{namespace}", "dockerd", "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "pid"), "--host", f"unix://{socket_path}", "--iptables=false", "--ip6tables=false"]
    root.mkdir(parents=True, exist_ok=True)

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdout=open(root / "dockerd.log", "a"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "-H", f"unix://{socket_path}", "info"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, (root / "dockerd.log").read_text()[-2000:]
            time.sleep(0.5)
        return proc

    state: dict = {}
    try:
        state["proc"] = start()
        yield f"unix://{socket_path}", state, start
    finally:
        if "proc" in state:
            state["proc"].terminate()
            state["proc"].wait(timeout=60)
        subprocess.run(["ip", "netns", "delete", namespace], check=False)
        subprocess.run(["rm", "-rf", str(root)], check=False)


def test_engine_stopped_and_restarted_under_the_running_service(tmp_path, private_engine, figures):
    docker_host, state, start = private_engine
    with api_process(tmp_path, make_config(tmp_path, docker_host=docker_host)) as url:
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        assert requests.get(f"{url}/v1/instances", headers=HEADERS, timeout=10).json() == {"instances": []}
        state["proc"].terminate()
        state["proc"].wait(timeout=60)
        down = [requests.get(f"{url}{path}", headers=HEADERS, timeout=30) for path in ("/healthz", "/v1/instances", "/v1/images")]
        assert [r.status_code for r in down] == [503, 503, 503]
        assert all(r.headers["Content-Type"] == "application/json" and ("error" in r.json() or "engine" in r.json())
                   for r in down)  # the content type checked for every answer, /healthz's included
        assert [r.headers.get("Retry-After") for r in down[1:]] == ["5", "5"]  # when to ask again
        log = "".join(path.read_text() for path in tmp_path.glob("api-*.log"))
        assert "WARNING GET /v1/images: " in log and "is dockerd running?" in log  # the operator sees why
        state["proc"] = start()
        deadline, answer = time.monotonic() + 60, None
        while time.monotonic() < deadline:  # the same service process, never restarted
            answer = requests.get(f"{url}/v1/instances", headers=HEADERS, timeout=30)
            if answer.status_code == 200:
                break
            time.sleep(0.5)
        assert answer is not None and answer.status_code == 200 and answer.json() == {"instances": []}
        assert requests.get(f"{url}/healthz", timeout=10).json()["engine"] is True
    figures["engine_restart"] = {"answers_while_down": [r.status_code for r in down], "recovered_without_restart": True}


def test_every_route_and_module_action_meets_a_stopped_engine_with_a_typed_error(tmp_path, private_engine, keypair,
                                                                                 figures):
    """Each route (walked from the service's own /openapi.json) and each module action, the image
    build and listing and the key's file copy included, against a stopped engine: a JSON 503 or a
    fail_json message naming the engine, never a 500 or a traceback."""
    docker_host, state, _start = private_engine
    answers: dict[str, int] = {}
    with api_process(tmp_path, make_config(tmp_path, docker_host=docker_host)) as url:
        spec = requests.get(f"{url}/openapi.json", timeout=30).json()
        state["proc"].terminate()
        state["proc"].wait(timeout=60)
        for path, operations in spec["paths"].items():
            concrete = re.sub(r"\{[^}]+\}", "alice-testprov-1", path)
            for method in operations:
                body = {"public_key": keypair[1]} if method in ("post", "put") else None
                reply = requests.request(method.upper(), f"{url}{concrete}", headers=HEADERS, json=body, timeout=60)
                answers[f"{method.upper()} {path}"] = reply.status_code
                assert reply.status_code != 500, (method, path, reply.text[:500])
                if reply.status_code >= 400 and path != "/":
                    assert reply.headers["Content-Type"].startswith("application/json"), (method, path, reply.text[:300])
                    assert "error" in reply.json() or reply.json().get("engine") is False  # /healthz says "engine": false
    unavailable = sorted(route for route, status in answers.items() if status == 503)
    assert {"POST /v1/instances", "GET /v1/instances", "GET /v1/images", "GET /ShowImages"} <= set(unavailable), answers
    provider = {"port_range": "43900-43909", "bind_address": "127.0.0.1"}
    tasks = [
        {"name": "create", "dockpool_container": {"name": "t-down", "public_key": keypair[1], "provider": provider,
                                                  "docker_host": docker_host}, "ignore_errors": True},
        {"name": "stop", "dockpool_container": {"name": "t-down", "state": "stopped", "provider": provider,
                                                "docker_host": docker_host}, "ignore_errors": True},
        {"name": "remove", "dockpool_container": {"name": "t-down", "state": "absent", "provider": provider,
                                                  "docker_host": docker_host}, "ignore_errors": True},
        {"name": "build", "dockpool_image": {"path": str(ROOT / "files" / "images" / "debian-sshd"),
                                             "docker_host": docker_host}, "ignore_errors": True},
        {"name": "specs", "dockpool_spec_facts": {"docker_host": docker_host}},
    ]
    run = run_playbook(tmp_path, tasks)
    assert "Traceback" not in run.raw and "MODULE FAILURE" not in run.raw, run.raw[-3000:]
    for result in run.tasks[:4]:
        assert result.get("failed") and "Docker engine" in result["msg"], result
    assert not run.tasks[4].get("failed") and run.tasks[4]["ansible_facts"]["dockpool_specs"]["hostname"]
    # The core's own engine calls with a client whose engine is gone: builds, listing, file copies.
    dead = docker.DockerClient(base_url=docker_host, version="1.41")  # a fixed version: no call until used
    container = dead.containers.prepare_model({"Id": "0" * 64})
    calls = {
        "build": lambda: build_image(dead, str(ROOT / "files" / "images" / "debian-sshd")),
        "list": lambda: list_images(dead),
        "resolve": lambda: resolve_image(dead, "debian-sshd"),
        "read a file": lambda: read_file(container, "/etc/passwd"),
        "write the key": lambda: write_authorized_key(container, Account("root", 0, 0, "/root"), keypair[1]),
    }
    for what, call in calls.items():
        with pytest.raises(EngineUnavailable) as info:
            call()
        assert "not reachable" in info.value.message, (what, info.value.message)
    figures["engine_stopped_routes"] = {"routes": len(answers), "answered_503": len(unavailable),
                                        "server_errors": 0, "module_actions_failed_cleanly": 4}


def test_watchdog_killed_while_writing_never_corrupts_its_file(tmp_path, engine, figures):
    usage = tmp_path / "usage.json"
    argv = [sys.executable, "-c",
            "import sys\nfrom dockpool.engine import connect\nfrom dockpool.usage import run_pass\nc = connect()\n"
            "while True: run_pass(c, sys.argv[1])\n", str(usage)]
    kills, checked = 0, 0
    for _ in range(20):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.3, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if usage.exists():
            report = read_json(str(usage))  # raises on a torn file
            assert isinstance(report["instances"], dict)
            checked += 1
    assert checked > 10
    assert not [p for p in tmp_path.iterdir() if p.name != "usage.json" and not p.name.endswith(".tmp")]
    figures["watchdog_kills"] = {"kills": kills, "files_checked": checked, "corrupt": 0}


def test_corrupt_peer_table_and_usage_file_are_logged_and_rebuilt(tmp_path, engine):
    settings = make_config(tmp_path)
    Path(settings["peers_file"]).write_text('{"ip_address": [{"Name": ')
    Path(settings["usage_file"]).write_text("\x00\x01 not json")
    with api_process(tmp_path, settings) as url:
        assert [p["Name"] for p in requests.get(f"{url}/v1/peers", timeout=10).json()["ip_address"]] == ["testprov"]
    log = next(tmp_path.glob("api-*.log")).read_text()
    assert "peer table" in log and "unreadable" in log and "usage file" in log
    assert read_json(settings["peers_file"]) == {"ip_address": []}  # rebuilt
    assert isinstance(read_json(settings["usage_file"])["instances"], dict)  # rebuilt by a watchdog pass
    assert Path(settings["peers_file"] + ".corrupt").read_text().startswith('{"ip_address"')  # kept for the operator


def test_endless_bodies_and_huge_tables_are_refused_at_a_bound_with_flat_memory(tmp_path, figures):
    with api_process(tmp_path, make_config(tmp_path, max_upload_bytes=8 * 2**20)) as url:
        service = next(p for p in psutil.Process().children() if "dockpool_api" in " ".join(p.cmdline()))
        before = service.memory_info().rss

        def endless(chunk: int = 1 << 20):
            for _ in range(2048):  # bounded: at most 2 GiB offered
                yield b"\0" * chunk

        refused = []
        for path in ("/v1/speedtest/upload", "/upload", "/v1/peers", "/IpTable"):
            try:
                # With a token: the peer routes refuse anonymous writers before reading anything.
                refused.append(requests.post(f"{url}{path}", data=endless(), headers=HEADERS, timeout=120).status_code)
            except requests.ConnectionError:
                refused.append("closed")  # the server stopped reading: also a refusal
        huge = {"ip_address": [{"Name": f"p{i}", "IPV4": "10.0.0.1", "ServerPort": str(i % 60000 + 1),
                                "CustomInformation": "x" * 1000} for i in range(20000)]}
        table = requests.post(f"{url}/v1/peers", json=huge, headers=HEADERS, timeout=120)
        after = service.memory_info().rss
        assert all(r in (413, "closed") for r in refused), refused
        assert table.status_code in (400, 413)
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        growth = (after - before) / 2**20
        figures["bounded_bodies"] = {"refused": refused, "huge_table_status": table.status_code,
                                     "rss_growth_mib": round(growth, 1)}
        assert growth < 64, f"resident memory grew by {growth:.0f} MiB"

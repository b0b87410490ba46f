"""A provider made by provision.yml, checked from outside with real clients.

Run by the molecule `provision` scenario's verify step (tests/e2e/molecule/provision),
which boots a fresh systemd host, provisions it and passes its address here. The
host publishes sshd on 127.0.0.1:22100 and instance ports 41000-41019 on 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from support.ansible_run import run_playbook, run_playbook_file
from support.paths import ROOT
from support.rfb import wait_for_rfb_login
from support.ssh import BASE_OPTIONS, make_keypair, ssh_password_attempt, ssh_run

HOST = os.environ.get("DOCKPOOL_E2E_HOST", "")
INVENTORY = os.environ.get("DOCKPOOL_E2E_INVENTORY", "")
SSH_PORT = int(os.environ.get("DOCKPOOL_E2E_SSH_PORT", "0"))
CACHE = Path(os.environ.get("DOCKPOOL_E2E_CACHE", str(ROOT / ".cache")))
API = os.environ.get("DOCKPOOL_E2E_API", "")
if not HOST:
    pytest.skip("run by the molecule provision scenario (tests/e2e/molecule/provision)", allow_module_level=True)

OPERATOR_KEY = CACHE / "operator_ed25519"
CLIENT_KEY = CACHE / "client_ed25519"
DOWNLOAD_KBIT = UPLOAD_KBIT = 16000  # the scenario's bandwidth caps
VENV = "/opt/dockpool/venv/bin/python"


def on_provider(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """Inspect the provider host from the test machine (the host is a container the scenario started)."""
    return subprocess.run(["docker", "exec", HOST, *argv], capture_output=True, text=True, check=check, timeout=120,
                          stdin=subprocess.DEVNULL)


def default_ipv4() -> str:
    """The provider's default IPv4 address, read from its own routes: what the role's default
    public address (Ansible's default_ipv4 fact) should be."""
    route = on_provider("ip", "-4", "-o", "route", "show", "default").stdout.split()
    device = route[route.index("dev") + 1]
    address = on_provider("ip", "-4", "-o", "addr", "show", "dev", device).stdout.split()
    return address[address.index("inet") + 1].split("/")[0]


def instance(tmp_path, name: str, key: Path = CLIENT_KEY, **params) -> dict:
    """Create an instance on the provider with dockpool_container and return it."""
    task = {"dockpool_container": {"name": name, "public_key": (key.with_suffix(".pub")).read_text().strip(),
                                   "memory": "128m", **params},
            "vars": {"ansible_python_interpreter": VENV}}
    result = run_playbook(tmp_path, [task], hosts=HOST, inventory=INVENTORY)
    assert result.rc == 0, result.raw
    return result.result()["instance"]


def remove(tmp_path, name: str) -> None:
    task = {"dockpool_container": {"name": name, "state": "absent"}, "vars": {"ansible_python_interpreter": VENV}}
    assert run_playbook(tmp_path, [task], hosts=HOST, inventory=INVENTORY).rc == 0


def jump_config(tmp_path, key: Path, name: str, port: int) -> Path:
    """An ssh config that reaches ``name`` through the provider's jump account, as a client writes it."""
    config = tmp_path / f"ssh_config_{name}"
    config.write_text(
        f"Host jump\n  HostName 127.0.0.1\n  Port {SSH_PORT}\n  User iaas-client\n  IdentityFile {key}\n"
        f"  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        f"Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  ProxyJump jump\n  IdentityFile {key}\n"
        f"  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    return config


def via_jump(config: Path, name: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", name, command],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def forward_through_jump(key: Path, port: int) -> subprocess.CompletedProcess:
    """Ask the jump account for a forward to 127.0.0.1:port, as ProxyJump does, and see sshd's answer."""
    # ssh keeps the first value of an option: INFO here, so the refusal is printed.
    argv = ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "LogLevel=INFO", *BASE_OPTIONS,
            "-p", str(SSH_PORT), "-W", f"127.0.0.1:{port}", "iaas-client@127.0.0.1"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_sshd_answers_on_22000_with_keys_only():
    login = ssh_run(OPERATOR_KEY, SSH_PORT, "id -un", user="iaas")
    assert login.returncode == 0 and login.stdout.strip() == "iaas", login.stderr
    root = ssh_run(OPERATOR_KEY, SSH_PORT, "true", user="root")
    assert root.returncode == 255 and "Permission denied (publickey)" in root.stderr
    password = ssh_password_attempt(SSH_PORT, user="iaas")
    assert password.returncode == 255 and "Permission denied (publickey)" in password.stderr


def test_an_instance_made_through_the_api_is_reached_directly_and_through_the_jump_account(tmp_path):
    headers = {"Authorization": f"Bearer {(CACHE / 'e2e.token').read_text().strip()}"}
    created = requests.post(f"{API}/v1/instances", json={"public_key": CLIENT_KEY.with_suffix(".pub").read_text().strip()},
                            headers=headers, timeout=120)
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["name"] == "e2e-e2e-1"
    assert ssh_run(CLIENT_KEY, view["ssh"]["port"], "hostname").stdout.strip() == view["name"]
    config = jump_config(tmp_path, CLIENT_KEY, "api", view["ssh"]["port"])
    assert via_jump(config, "api", "hostname").stdout.strip() == view["name"]
    # Provisioned with the default public address: the provider's default IPv4 address, which this
    # machine (a client on the provider's network) reaches.
    assert view["ssh"]["jump"]["host"] == default_ipv4()
    assert view["ssh"]["jump_command"] == f"ssh -J iaas-client@{default_ipv4()}:22000 -p {view['ssh']['port']} root@127.0.0.1"
    assert requests.delete(f"{API}/v1/instances/{view['id']}", headers=headers, timeout=60).status_code == 200
    assert on_provider("docker", "ps", "-aq", "--filter", f"name={view['name']}").stdout.strip() == ""


@pytest.mark.parametrize("runtime", ["runsc", "runc"])
def test_an_engine_restart_spares_the_clients_instances(tmp_path, runtime):
    """live-restore (the docker_engine role's default), under either runtime: the instance, a
    process started in it before the restart, and SSH directly and through the jump account
    all outlive the engine."""
    view = instance(tmp_path, f"e2e-restart-{runtime}", runtime=runtime)
    assert view["runtime"] == runtime
    port = view["ssh"]["port"]
    started = ssh_run(CLIENT_KEY, port, "nohup sleep 100000 >/dev/null 2>&1 & echo $!")
    assert started.returncode == 0, started.stderr
    pid = started.stdout.strip()
    since = on_provider("docker", "inspect", "--format", "{{.State.StartedAt}}", view["id"]).stdout.strip()
    assert json.loads(on_provider("docker", "info", "--format", "{{json .LiveRestoreEnabled}}").stdout) is True
    on_provider("systemctl", "restart", "docker")
    assert on_provider("docker", "inspect", "--format", "{{.State.StartedAt}}", view["id"]).stdout.strip() == since
    survived = ssh_run(CLIENT_KEY, port, f"kill -0 {pid} && echo alive")
    assert survived.stdout.strip() == "alive", survived.stderr
    config = jump_config(tmp_path, CLIENT_KEY, "restart", port)
    assert via_jump(config, "restart", "hostname").stdout.strip() == view["name"]
    remove(tmp_path, f"e2e-restart-{runtime}")


def test_clients_instances_run_under_gvisor_with_their_limits(tmp_path):
    """The scenario chose runsc: the role registered it with the arguments this kernel needs, and
    an instance made through the API runs under gVisor, held to its limits."""
    daemon = json.loads(on_provider("cat", "/etc/docker/daemon.json").stdout)["runtimes"]["runsc"]
    assert json.loads(on_provider("cat", "/etc/dockpool/provider.json").stdout)["runtime"] == "runsc"
    # --network=host exactly where this kernel gives each network namespace its own rmem_default.
    namespaced = on_provider("unshare", "--net", "test", "-e", "/proc/sys/net/core/rmem_default", check=False).returncode == 0
    assert daemon == {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"] if namespaced else []}
    headers = {"Authorization": f"Bearer {(CACHE / 'e2e.token').read_text().strip()}"}
    created = requests.post(f"{API}/v1/instances", headers=headers, timeout=120,
                            json={"public_key": CLIENT_KEY.with_suffix(".pub").read_text().strip(), "memory_reservation": "256m"})
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["runtime"] == "runsc"
    inside = ssh_run(CLIENT_KEY, view["ssh"]["port"], "dmesg | head -1; grep MemTotal /proc/meminfo")
    assert "Starting gVisor" in inside.stdout, inside.stdout + inside.stderr
    host = json.loads(on_provider("docker", "inspect", "--format", "{{json .HostConfig}}", view["id"]).stdout)
    assert host["Runtime"] == "runsc" and inside.stdout.split()[-2] == str(host["Memory"] // 1024)
    assert requests.delete(f"{API}/v1/instances/{view['id']}", headers=headers, timeout=60).status_code == 200

    desktop = requests.post(f"{API}/v1/instances", headers=headers, timeout=120, json={
        "image": "desktop", "public_key": CLIENT_KEY.with_suffix(".pub").read_text().strip(), "memory_reservation": "384m"})
    assert desktop.status_code == 201, desktop.text
    view = desktop.json()
    port = int(view["desktop"]["vnc_address"].rsplit(":", 1)[1])
    version, accepted = wait_for_rfb_login("127.0.0.1", port, view["desktop"]["vnc_password"])
    assert view["runtime"] == "runsc" and version.startswith("RFB 003.") and accepted
    assert requests.delete(f"{API}/v1/instances/{view['id']}", headers=headers, timeout=60).status_code == 200


def test_the_default_image_is_built():
    labels = json.loads(on_provider("docker", "image", "inspect", "--format", "{{json .Config.Labels}}", "dockpool/debian-sshd:latest").stdout)
    assert labels["dockpool.image.name"] == "debian-sshd"
    assert json.loads(labels["dockpool.image.ports"])[0]["port"] == 22


def test_jump_account_forwards_to_own_instances_only_and_gives_no_shell(tmp_path):
    mine = instance(tmp_path, "e2e-jump-mine")
    theirs = instance(tmp_path, "e2e-jump-theirs", key=OPERATOR_KEY)
    config = jump_config(tmp_path, CLIENT_KEY, "mine", mine["ssh"]["port"])
    reached = via_jump(config, "mine", "hostname")
    assert reached.returncode == 0 and reached.stdout.strip() == "e2e-jump-mine", reached.stderr

    for port in (theirs["ssh"]["port"], 22000):  # another client's instance, the provider's own sshd
        refused = forward_through_jump(CLIENT_KEY, port)
        assert refused.returncode == 255 and "administratively prohibited" in refused.stderr, refused.stderr

    shell = ssh_run(CLIENT_KEY, SSH_PORT, "id", user="iaas-client")
    assert shell.returncode == 1 and "uid=" not in shell.stdout
    assert "This account is currently not available" in shell.stdout
    tty = ssh_run(CLIENT_KEY, SSH_PORT, "id", user="iaas-client", options=("-tt",))
    assert "uid=" not in tty.stdout and "PTY allocation request failed" in tty.stderr

    remove(tmp_path, "e2e-jump-mine")
    revoked = via_jump(config, "mine", "hostname")
    assert revoked.returncode == 255 and "Permission denied" in revoked.stderr
    remove(tmp_path, "e2e-jump-theirs")


def api_headers(client: str) -> dict:
    return {"Authorization": f"Bearer {(CACHE / f'{client}.token').read_text().strip()}"}


def api_create(client: str, public_key: str) -> requests.Response:
    return requests.post(f"{API}/v1/instances", json={"public_key": public_key, "memory_reservation": "128m"},
                         headers=api_headers(client), timeout=120)


def api_remove(client: str, view: dict) -> None:
    assert requests.delete(f"{API}/v1/instances/{view['id']}", headers=api_headers(client), timeout=60).status_code == 200


def test_another_client_cannot_take_over_a_key_and_cut_off_its_owners_jump_access(tmp_path):
    public = CLIENT_KEY.with_suffix(".pub").read_text().split()
    mine = api_create("e2e", " ".join(public))
    assert mine.status_code == 201, mine.text
    view = mine.json()
    # The same key material with another comment, from another client: refused, nothing made.
    stolen = api_create("other", f"{public[0]} {public[1]} someone-else@elsewhere")
    assert stolen.status_code == 409 and stolen.json()["field"] == "public_key", stolen.text
    assert on_provider("docker", "ps", "-aq", "--filter", "label=dockpool.owner=other").stdout.strip() == ""
    config = jump_config(tmp_path, CLIENT_KEY, "owner", view["ssh"]["port"])
    reached = via_jump(config, "owner", "hostname")
    assert reached.returncode == 0 and reached.stdout.strip() == view["name"], reached.stderr
    # The key list sshd reads matches keys by their material: one line for this key.
    keys = on_provider("cat", "/var/lib/dockpool/jump-keys").stdout
    assert keys.count(f"{public[0]} {public[1]} ") == 1
    api_remove("e2e", view)


def test_jump_key_lookup_runs_no_interpreter_and_junk_keys_do_not_stop_a_login(tmp_path):
    effective = on_provider("sshd", "-T", "-C", "user=iaas-client,host=client,addr=127.0.0.1").stdout
    command = next(line for line in effective.splitlines() if line.startswith("authorizedkeyscommand "))
    assert command == "authorizedkeyscommand /usr/bin/cat /var/lib/dockpool/jump-keys", command
    view = api_create("e2e", CLIENT_KEY.with_suffix(".pub").read_text().strip())
    assert view.status_code == 201, view.text
    view = view.json()
    junk = [make_keypair(tmp_path, f"junk{i}")[0] for i in range(2)]  # sshd_max_auth_tries is 3
    identities = [arg for key in [*junk, CLIENT_KEY] for arg in ("-i", str(key))]
    argv = ["ssh", *identities, "-o", "IdentitiesOnly=yes", *BASE_OPTIONS, "-p", str(SSH_PORT),
            "-W", f"127.0.0.1:{view['ssh']['port']}", "iaas-client@127.0.0.1"]
    banner = subprocess.run(argv, capture_output=True, timeout=60, input=b"", check=False)
    assert banner.stdout.startswith(b"SSH-2.0-"), banner.stderr  # the junk keys refused, then the right one forwards
    api_remove("e2e", view)


def test_a_jump_connection_outliving_an_instance_never_reaches_the_next_instance_on_its_port(tmp_path):
    first = api_create("e2e", CLIENT_KEY.with_suffix(".pub").read_text().strip())
    assert first.status_code == 201, first.text
    first = first.json()
    port = first["ssh"]["port"]
    socket_path = tmp_path / "master.sock"
    master = ["ssh", "-i", str(CLIENT_KEY), "-o", "IdentitiesOnly=yes", *BASE_OPTIONS, "-p", str(SSH_PORT),
              "-S", str(socket_path), "iaas-client@127.0.0.1"]
    opened = subprocess.run([*master[:1], "-M", "-f", "-N", "-o", "ControlPersist=no", *master[1:]],
                            capture_output=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert opened.returncode == 0, opened.stderr

    def through_master(target: int) -> bytes:
        done = subprocess.run([*master, "-W", f"127.0.0.1:{target}"], capture_output=True, timeout=60, input=b"",
                              check=False)
        return done.stdout

    try:
        assert through_master(port).startswith(b"SSH-2.0-")  # the connection may forward to the instance
        api_remove("e2e", first)
        stranger_key = make_keypair(tmp_path, "stranger")[1]
        second = api_create("other", stranger_key)
        assert second.status_code == 201, second.text
        second = second.json()
        # The open connection still holds its permission for `port`: that port goes to nobody else.
        assert port not in [p["host_port"] for p in second["ports"]]
        assert not through_master(port).startswith(b"SSH-2.0-")
        held = json.loads(on_provider("cat", "/var/lib/dockpool/released-ports.json").stdout)
        assert held[str(port)][1] == "e2e"  # held for the client whose keys could reach it
        # That client gets it back first: cycling instances with an idle connection holds its own
        # port, not the pool (another client took a port meanwhile, and still could).
        for _ in range(3):
            mine = api_create("e2e", CLIENT_KEY.with_suffix(".pub").read_text().strip())
            assert mine.status_code == 201, mine.text
            assert mine.json()["ssh"]["port"] == port
            api_remove("e2e", mine.json())
        held = json.loads(on_provider("cat", "/var/lib/dockpool/released-ports.json").stdout)
        assert held[str(port)][1] == "e2e"  # still its own: given to nobody else
    finally:
        subprocess.run([*master, "-O", "exit"], capture_output=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    # Once no connection from before the removal is alive, the port is given again.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and on_provider("pgrep", "-u", "iaas-client", check=False).returncode == 0:
        time.sleep(0.5)
    third = api_create("e2e", CLIENT_KEY.with_suffix(".pub").read_text().strip())
    assert third.status_code == 201, third.text
    third = third.json()
    # The lowest free port is given; the released one is no longer held back.
    assert third["ssh"]["port"] <= port
    assert str(port) not in json.loads(on_provider("cat", "/var/lib/dockpool/released-ports.json").stdout)
    api_remove("other", second)
    api_remove("e2e", third)


def test_watchdog_stops_the_instance_over_its_disk_limit_within_60_s(tmp_path):
    writer = instance(tmp_path, "e2e-disk-writer", disk_limit="50m")
    keeper = instance(tmp_path, "e2e-disk-keeper", disk_limit="1g")
    wrote = ssh_run(CLIENT_KEY, writer["ssh"]["port"], "head -c 80M /dev/urandom > /root/blob && sync")
    assert wrote.returncode == 0, wrote.stderr
    assert ssh_run(CLIENT_KEY, keeper["ssh"]["port"], "head -c 5M /dev/urandom > /root/blob").returncode == 0
    written = time.monotonic()
    state = "running"
    while state == "running" and time.monotonic() - written < 90:  # bounded: two cron periods and a margin
        time.sleep(2)
        state = on_provider("docker", "inspect", "--format", "{{.State.Status}}", "e2e-disk-writer").stdout.strip()
    elapsed = time.monotonic() - written
    print(f"watchdog stopped the writer {elapsed:.0f} s after the write")
    assert state == "exited" and elapsed <= 60
    assert on_provider("docker", "inspect", "--format", "{{.State.Status}}", "e2e-disk-keeper").stdout.strip() == "running"
    usage = json.loads(on_provider("cat", "/var/lib/dockpool/usage.json").stdout)
    assert usage["instances"]["e2e-disk-writer"]["size_rw"] > 50 * 1024**2
    assert usage["instances"]["e2e-disk-keeper"]["disk_limit"] == 1024**3
    assert "stopped e2e-disk-writer" in on_provider("cat", "/var/log/dockpool/watchdog.log").stdout
    remove(tmp_path, "e2e-disk-writer")
    remove(tmp_path, "e2e-disk-keeper")


RECEIVE_RATE = (
    "python3 -c \"import sys, time\n"
    "first = sys.stdin.buffer.read(65536); t = time.monotonic(); n = 0\n"
    "while chunk := sys.stdin.buffer.read(65536): n += len(chunk)\n"
    "print(n / (time.monotonic() - t))\""
)


def test_transfers_are_held_to_the_configured_rates(tmp_path):
    shaped = instance(tmp_path, "e2e-bandwidth")
    port = shaped["ssh"]["port"]
    size = 6 * 1024**2
    # Out of the instance: what a client downloads from it; timed from the first byte.
    argv = ["ssh", "-i", str(CLIENT_KEY), "-o", "IdentitiesOnly=yes", *BASE_OPTIONS, "-p", str(port), "root@127.0.0.1",
            f"head -c {size} /dev/zero"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL) as proc:
        received = len(proc.stdout.read(65536))
        started = time.monotonic()
        while chunk := proc.stdout.read(65536):
            received += len(chunk)
        out_rate = (received - 65536) / (time.monotonic() - started)
    assert received == size
    # Into the instance: measured by the instance as it receives.
    into = subprocess.run(["ssh", "-i", str(CLIENT_KEY), "-o", "IdentitiesOnly=yes", *BASE_OPTIONS, "-p", str(port),
                           "root@127.0.0.1", RECEIVE_RATE], input=b"\0" * size, capture_output=True, timeout=120)
    assert into.returncode == 0, into.stderr
    in_rate = float(into.stdout)
    cap_out, cap_in = UPLOAD_KBIT * 1000 / 8, DOWNLOAD_KBIT * 1000 / 8
    print(f"out of the instance {out_rate / 1e6:.2f} MB/s (cap {cap_out / 1e6:.2f}), into it {in_rate / 1e6:.2f} MB/s (cap {cap_in / 1e6:.2f})")
    assert 0.3 * cap_out < out_rate < 1.15 * cap_out
    assert 0.3 * cap_in < in_rate < 1.15 * cap_in
    remove(tmp_path, "e2e-bandwidth")


def api_instance_runtime() -> str:
    """Create an instance through the API once it answers (bounded), and remove it: its runtime."""
    headers = {"Authorization": f"Bearer {(CACHE / 'e2e.token').read_text().strip()}"}
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{API}/healthz", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the API did not come back within 60 s"
        time.sleep(0.5)
    created = requests.post(f"{API}/v1/instances", headers=headers, timeout=120,
                            json={"public_key": CLIENT_KEY.with_suffix(".pub").read_text().strip(), "memory_reservation": "128m"})
    assert created.status_code == 201, created.text
    assert requests.delete(f"{API}/v1/instances/{created.json()['id']}", headers=headers, timeout=60).status_code == 200
    return created.json()["runtime"]


def test_a_changed_provider_setting_reaches_the_running_api(tmp_path):
    """The API reads provider.json at start: a run that changes it restarts the service
    (dockpool_core notifies a topic the provider_api role's restart listens to), so the next
    instance follows the new setting, here an image moved to runc and back."""
    tags = ["role::docker_engine:config", "role::dockpool_core:config"]
    try:
        moved = run_playbook_file(ROOT / "provision.yml", inventory=INVENTORY, host=HOST, tags=tags,
                                  extra_vars={"docker_engine_image_runtimes": {"debian-sshd": "runc"}})
        assert moved.rc == 0 and moved.changed >= 2, moved.raw[-3000:]  # provider.json and its handlers
        assert api_instance_runtime() == "runc"
    finally:
        back = run_playbook_file(ROOT / "provision.yml", inventory=INVENTORY, host=HOST, tags=tags)
    assert back.rc == 0, back.raw[-3000:]
    assert api_instance_runtime() == "runsc"


def test_check_mode_on_the_provisioned_host_reports_no_change(tmp_path):
    """Run from a read-only mount of the checkout: a run writes nothing into the controller's clone."""
    checkout = tmp_path / "read-only-checkout"
    checkout.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(ROOT), str(checkout)], check=True, timeout=30)
    try:
        assert subprocess.run(["touch", str(checkout / "probe")], capture_output=True, check=False).returncode != 0
        result = run_playbook_file(checkout / "provision.yml", check=True, diff=True, inventory=INVENTORY, host=HOST,
                                   checkout=checkout)
    finally:
        subprocess.run(["umount", str(checkout)], check=True, timeout=30)
    assert result.rc == 0, result.raw[-3000:]
    assert result.changed == 0, [t.get("diff") for t in result.tasks if t.get("changed")]


def test_the_drain_play_runs_with_the_operators_own_credential_on_an_inventory_without_an_admin():
    """The scenario's inventory lists only ordinary clients: drain.yml (and so teardown.yml) reads the
    provider's root-only local credential with become and is let in on loopback."""
    play = ROOT / "playbooks" / "drain.yml"
    try:
        drained = run_playbook_file(play, inventory=INVENTORY, host=HOST)
        calls = [t["status"] for t in drained.tasks if "status" in t]
        assert len(calls) >= 2 and set(calls) == {200}, drained.raw[-3000:]  # read, started, moves asked
        assert drained.rc in (0, 2), drained.raw[-3000:]  # 2: alone in its fleet, an instance fits nowhere (named)
    finally:
        ended = run_playbook_file(play, inventory=INVENTORY, host=HOST, extra_vars={"drain_state": "absent"})
    assert ended.rc == 0 and ended.changed == 1, ended.raw[-3000:]


def test_teardown_then_provision_gives_a_working_provider_again(tmp_path):
    instance(tmp_path, "e2e-before-teardown")
    # The rule iaas_user writes for an operator who asked for it; by default it does not outlive the provider.
    on_provider("sh", "-c", "echo 'iaas ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/dockpool-iaas")
    # Alone in its fleet, with an instance of the operator's: nothing can take it, so no drain first.
    down = run_playbook_file(ROOT / "playbooks" / "teardown.yml", inventory=INVENTORY, host=HOST,
                             extra_vars={"teardown_drain": False})
    assert down.rc == 0, down.raw[-3000:]
    assert on_provider("test", "-e", "/etc/sudoers.d/dockpool-iaas", check=False).returncode == 1
    said = [t["msg"] for t in down.tasks if isinstance(t.get("msg"), list) and str(t["msg"][0]).startswith("Removed:")]
    assert len(said) == 1 and "the sudo rule of iaas" in said[0][0], said
    assert said[0][1].startswith("Stays: Docker with its images"), said
    assert on_provider("docker", "ps", "-aq", "--filter", "label=dockpool.managed-by=dockpool").stdout.strip() == ""
    assert on_provider("test", "-e", "/etc/cron.d/dockpool-watchdog", check=False).returncode == 1
    assert on_provider("test", "-e", "/etc/systemd/system/dockpool-bandwidth.service", check=False).returncode == 1
    assert "htb" not in on_provider("tc", "qdisc", "show", "dev", "docker0").stdout

    up = run_playbook_file(ROOT / "provision.yml", inventory=INVENTORY, host=HOST)
    assert up.rc == 0, up.raw[-3000:]
    again = instance(tmp_path, "e2e-after-teardown")
    config = jump_config(tmp_path, CLIENT_KEY, "again", again["ssh"]["port"])
    assert via_jump(config, "again", "hostname").stdout.strip() == "e2e-after-teardown"
    assert on_provider("test", "-e", "/etc/cron.d/dockpool-watchdog").returncode == 0
    assert "htb" in on_provider("tc", "qdisc", "show", "dev", "docker0").stdout
    remove(tmp_path, "e2e-after-teardown")

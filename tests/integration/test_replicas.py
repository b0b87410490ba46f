"""Replicas (issue 24, part 3): a copy of an instance on another member of the fleet, refreshed
with only what changed, bounded on its holder, removed with the instance. Two real API
processes on two engines, over the fleet's mutual TLS; the holder's files read as they are."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import requests

from dockpool.errors import InvalidInput
from dockpool_api.config import config_from_dict
from dockpool_api.fleet import tls as fleet_tls
from dockpool_api.fleet.replicas import mounted_layer
from dockpool_api.fleet.store import NoRoom, ReplicaStore
from dockpool_api.fleet.transport import Call, Endpoint, HttpTransport, Unreachable
from support.api_config import TOKENS, make_config
from support.cli import cli
from support.ssh import ssh_run
from support.two_providers import FLEET_PORT, SOURCE, TARGET, three_providers, two_providers
from support.waiting import until

pytestmark = pytest.mark.engine
MIB = 1024**2
ALICE = {"Authorization": f"Bearer {TOKENS['alice']}"}
INSTANCE = {"owner": "alice", "request": {"public_key": "ssh-ed25519 AAAA"}, "running": True}


def merged_names(store: ReplicaStore, name: str) -> dict[str, int]:
    """Path -> size of the replica as an import would take it."""
    with tempfile.TemporaryFile() as out:
        store.merged("source", name, out)
        out.seek(0)
        return {m.name: m.size for m in tarfile.open(fileobj=out)}


def test_a_replica_ships_what_changed_survives_a_cut_refresh_and_goes_with_the_instance(tmp_path, keypair, engine,
                                                                                       cleanup):
    with two_providers(tmp_path, api={"replica_interval": 4}) as (source, target, engine2):
        made = requests.post(f"{SOURCE}/v1/instances", headers=ALICE, timeout=180,
                             json={"public_key": keypair[1], "memory_reservation": "128m"})
        assert made.status_code == 201, made.text
        view = made.json()
        port = view["ssh"]["port"]
        wrote = ssh_run(keypair[0], port, "head -c 300M /dev/urandom > /root/payload; echo 'v1' > /root/notes.txt")
        assert wrote.returncode == 0, wrote.stderr
        assert requests.get(f"{SOURCE}/v1/instances/{view['name']}/replicas", headers=ALICE, timeout=10).json() == {
            "replicas": []}
        assert requests.post(f"{SOURCE}/v1/instances/{view['name']}/replicate", headers={
            "Authorization": f"Bearer {TOKENS['bob']}"}, timeout=60).status_code == 404  # not bob's

        time.sleep(1.1)  # a file written in the refresh's own second is shipped again next time (fleet/deltas.py)
        first = requests.post(f"{SOURCE}/v1/instances/{view['name']}/replicate", headers=ALICE, timeout=600)
        assert first.status_code == 200, first.text
        assert first.json()["holder"] == "target" and first.json()["full"] is True
        assert first.json()["shipped_bytes"] > 300 * MIB
        assert engine.containers.get(view["id"]).status == "running"  # thawed

        # 10 MiB changed and one file removed: about 10 MiB crosses, not the 300 MiB again.
        changed = ssh_run(keypair[0], port, "head -c 10M /dev/urandom > /root/changed; echo 'v2' > /root/notes.txt; "
                                            "rm /etc/motd")
        assert changed.returncode == 0, changed.stderr
        time.sleep(1.1)
        second = requests.post(f"{SOURCE}/v1/instances/{view['name']}/replicate", headers=ALICE, timeout=600).json()
        assert second["full"] is False and 10 * MIB < second["shipped_bytes"] < 12 * MIB, second
        assert 0 < second["pause_seconds"] < 30
        shown = requests.get(f"{SOURCE}/v1/instances/{view['name']}/replicas", headers=ALICE, timeout=10).json()
        [replica] = shown["replicas"]
        assert replica["holder"] == "target" and replica["live"] and 0 <= replica["age_seconds"] < 60
        assert replica["read"] == "live"  # read from the mounted filesystem while it ran

        store = ReplicaStore(str(target.directory / "replicas" / "held"), 10 * 1024**3)
        names = merged_names(store, view["name"])
        assert names["root/payload"] == 300 * MIB and names["root/changed"] == 10 * MIB
        assert names["root/notes.txt"] == 3 and "etc/motd" not in names
        chain = store.chain("source", view["name"])

        # A refresh cut half-way (the source dies mid-send): the replica stays as it was, no scrap is left.
        tls = fleet_tls.FleetTLS(source.settings["fleet_cert"], source.settings["fleet_key"],
                                 source.settings["fleet_cas"])

        def cut():
            yield b"\0" * MIB
            raise ConnectionAbortedError("the source died")

        with pytest.raises(Unreachable, match="the source died"):
            HttpTransport(tls.client_context()).open(Endpoint("127.0.0.3", FLEET_PORT, "target"), Call(
                "PUT", f"/v1/fleet/replicas/{view['name']}", body=cut(),
                headers={"Content-Length": str(50 * MIB), "X-Dockpool-Refresh": "0123456789abcdef",
                         "X-Dockpool-Parent": second["refresh"]}))
        assert store.chain("source", view["name"]) == chain
        assert merged_names(store, view["name"]) == names
        assert not [p for p in (target.directory / "replicas" / "held").rglob(".*")]  # no temporary file kept
        # Nothing changed: little crosses. Then the holder loses the replica: it refuses the next
        # delta, which does not follow a chain it has, and the source sends a full copy instead.
        third = requests.post(f"{SOURCE}/v1/instances/{view['name']}/replicate", headers=ALICE, timeout=600).json()
        assert third["full"] is False and third["shipped_bytes"] < 2 * MIB, third
        store.remove("source", view["name"])
        fourth = requests.post(f"{SOURCE}/v1/instances/{view['name']}/replicate", headers=ALICE, timeout=600).json()
        assert fourth["holder"] == "target" and fourth["full"] is True and fourth["shipped_bytes"] > 300 * MIB, fourth
        removed = requests.delete(f"{SOURCE}/v1/instances/{view['name']}", headers=ALICE, timeout=60)
        assert removed.status_code == 200
        assert store.chain("source", view["name"]) is None
        assert not (source.directory / "replicas" / "out" / f"{view['name']}.json").exists()

        # Asked at creation (up --replica): the provider refreshes it every replica_interval (4 s here).
        asked = requests.post(f"{SOURCE}/v1/instances", headers=ALICE, timeout=180,
                              json={"public_key": keypair[1], "memory_reservation": "128m", "replica": True}).json()
        assert asked["replica"] is True
        seen = []
        deadline = time.monotonic() + 60
        while len({r["refresh"] for r in seen}) < 2:
            assert time.monotonic() < deadline, f"no two periodic refreshes within 60 s: {seen}"
            time.sleep(1)
            seen += requests.get(f"{SOURCE}/v1/instances/{asked['name']}/replicas", headers=ALICE, timeout=10).json()[
                "replicas"]
        assert seen[0]["full"] is True and seen[-1]["full"] is False and seen[-1]["holder"] == "target"
        assert requests.delete(f"{SOURCE}/v1/instances/{asked['name']}", headers=ALICE, timeout=60).status_code == 200
        assert store.chain("source", asked["name"]) is None


def replica_files(store: ReplicaStore, name: str, prefixes: tuple[str, ...]) -> dict[str, bytes]:
    """The regular files whose path starts with one of ``prefixes`` in the replica as an import would
    take it: path -> content."""
    with tempfile.TemporaryFile() as out:
        store.merged("source", name, out)
        out.seek(0)
        with tarfile.open(fileobj=out) as archive:
            return {m.name: archive.extractfile(m).read() for m in archive if m.isreg() and m.name.startswith(prefixes)}


def test_a_refresh_read_while_the_instance_writes_is_of_one_moment(tmp_path, keypair, engine, cleanup):
    """The provider reads a running instance's files while it runs and freezes it only to settle
    what changed meanwhile. A program writes file i, then `last` = i (by a rename), and removes file i-5 (`last` in /var, read
    long before /root/seq: the walk reads /usr between them). Meanwhile 40 directories of old files
    move to another directory: each is in the replica once, with its file, as
    fast as it can, throughout two refreshes: each replica is one moment of it (``last`` = k:
    files k-4..k, maybe k-5 not yet removed and k+1 begun, each holding its number), which a copy read over seconds
    without the settling pass is not."""
    with two_providers(tmp_path) as (_source, target, _engine2):
        made = requests.post(f"{SOURCE}/v1/instances", headers=ALICE, timeout=180,
                             json={"public_key": keypair[1], "memory_reservation": "128m"}).json()
        container = engine.containers.get(made["id"])
        # /opt/bulk is read after /root: the time for a directory to move after both its places were read.
        assert container.exec_run(["sh", "-c", "head -c 200M /dev/urandom > /opt/bulk && mkdir /root/seq /root/moved && "
                                               "for n in $(seq 1 40); do mkdir -p /root/pre/$n; echo $n > /root/pre/$n/f; "
                                               "done"]).exit_code == 0
        container.exec_run(["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); echo $i > /root/seq/$i; "
                                        "echo $i > /var/next; mv /var/next /var/last; rm -f /root/seq/$((i-5)); done"], detach=True)
        store = ReplicaStore(str(target.directory / "replicas" / "held"), 10 * 1024**3)
        for full, there, back in ((True, "pre", "moved"), (False, "moved", "pre")):
            time.sleep(1)  # the 40 files are older than the refresh; their directories move during it
            container.exec_run(["sh", "-c", f"for n in $(seq 1 40); do mv /root/{there}/$n /root/{back}/$n; sleep 0.05; "
                                            "done"], detach=True)
            answer = requests.post(f"{SOURCE}/v1/instances/{made['name']}/replicate", headers=ALICE, timeout=600)
            assert answer.status_code == 200, answer.text
            assert answer.json()["full"] is full and answer.json()["read"] == "live", answer.text
            files = replica_files(store, made["name"], ("var/last", "root/"))
            last = int(files["var/last"])
            seq = {int(p.rsplit("/", 1)[1]) for p in files if p.startswith("root/seq/")}
            assert last > 0 and set(range(max(1, last - 4), last + 1)) <= seq <= set(range(last - 5, last + 2)), \
                (last, sorted(seq))
            assert all(files[f"root/seq/{n}"] == f"{n}\n".encode() for n in seq if n <= last)
            places = {n: [d for d in ("pre", "moved") if files.get(f"root/{d}/{n}/f") == f"{n}\n".encode()]
                      for n in range(1, 41)}
            assert all(len(found) == 1 for found in places.values()), places  # each directory once, with its file
        progress = int(container.exec_run(["cat", "/var/last"]).output)
        assert progress > last, "the program did not run on after the refreshes"
        attrs = engine.api.inspect_container(made["id"])
        assert mounted_layer({**attrs, "HostConfig": {**attrs["HostConfig"], "Runtime": "runsc"}}) is None

        unmounted = {**attrs, "GraphDriver": {**attrs["GraphDriver"], "Data": {
            **attrs["GraphDriver"]["Data"], "MergedDir": str(tmp_path)}}}  # not a mount of this machine
        assert mounted_layer(unmounted) is None

        # A stopped instance has no mounted filesystem: the refresh reads docker export (nothing to freeze).
        stopped = requests.post(f"{SOURCE}/v1/instances", headers=ALICE, timeout=180,
                                json={"public_key": keypair[1], "memory_reservation": "64m"}).json()
        assert requests.post(f"{SOURCE}/v1/instances/{stopped['name']}/stop", headers=ALICE, timeout=60).ok
        exported = requests.post(f"{SOURCE}/v1/instances/{stopped['name']}/replicate", headers=ALICE, timeout=600)
        assert exported.status_code == 200 and exported.json()["read"] == "export", exported.text
        assert exported.json()["pause_seconds"] == 0 and "etc/passwd" in merged_names(store, stopped["name"])


def test_a_holder_refuses_a_refresh_it_has_no_room_for_and_keeps_nothing(tmp_path):
    store = ReplicaStore(str(tmp_path / "held"), max_bytes=1 * MIB)
    body = tempfile.TemporaryFile()
    with tarfile.open(fileobj=body, mode="w") as archive:
        info = tarfile.TarInfo("root/big")
        info.size = 2 * MIB
        archive.addfile(info, fileobj=io.BytesIO(b"\0" * info.size))
    length = body.tell()
    body.seek(0)
    with pytest.raises(NoRoom) as refused:
        store.receive("source", "alice-source-1", "0123456789abcdef", "", body, length, INSTANCE)
    assert refused.value.field == "replica_max_bytes" and refused.value.http_status == 507
    assert not list((tmp_path / "held").rglob("*.tar"))
    with pytest.raises(InvalidInput):  # a name that would leave the holder's folder
        store.receive("source", "../escape", "0123456789abcdef", "", body, length, INSTANCE)
    assert list(store.held()) == []


def members(url: str) -> list[str]:
    return [m["name"] for m in requests.get(f"{url}/v1/fleet", timeout=5).json()["members"]]


def tar_of(files: dict[str, int]) -> tuple[io.BytesIO, int]:
    """A refresh body: a tar of ``files`` (path: size) of random bytes, and its length."""
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, size in files.items():
            info = tarfile.TarInfo(path)
            info.size = size
            archive.addfile(info, fileobj=io.BytesIO(os.urandom(size)))
    length = body.tell()
    body.seek(0)
    return body, length


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real filesystem of ``size`` (tmpfs) mounted at ``path``, that a test can fill or grow."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    """600 MiB: what is left for replicas after the holder's free margin (512 MiB) is 88 MiB."""
    with tmpfs(tmp_path / "disk", "600m") as disk:
        yield disk


def test_a_holder_whose_disk_fills_during_a_refresh_keeps_the_replica_it_had(small_disk):
    """Another writer fills the holder's disk after the refresh was admitted: the kernel's ENOSPC
    mid-write becomes a 507, the temporary file goes, the replica stays as it was and can be read;
    with the disk full the next refresh is refused before a byte is written; with room again it joins."""
    store = ReplicaStore(str(small_disk / "held"), 10 * 1024**3)
    body, length = tar_of({"root/a": 8 * MIB})
    first = store.receive("source", "alice-source-1", "00000000000000a1", "", body, length, INSTANCE)
    filler = small_disk / "filler"

    class FillingBody(io.BytesIO):
        """The delta as the network gives it; after its first MiB another writer takes the disk's room."""

        def read(self, size: int = -1) -> bytes:
            if self.tell() >= MIB and not filler.exists():
                with open(filler, "wb") as handle:
                    os.posix_fallocate(handle.fileno(), 0, shutil.disk_usage(small_disk).free - 4 * MIB)
            return super().read(size)

    delta, length = tar_of({"root/b": 40 * MIB})
    assert length < store.status("source", "alice-source-1")["room_delta"]  # admitted: it fitted when asked
    with pytest.raises(NoRoom) as refused:
        store.receive("source", "alice-source-1", "00000000000000b2", first["refresh"], FillingBody(delta.getvalue()),
                      length, INSTANCE)
    assert refused.value.http_status == 507 and "filled" in refused.value.message, refused.value.message
    assert not [p for p in (small_disk / "held").rglob(".*")]  # no temporary file kept
    assert store.chain("source", "alice-source-1")["ids"] == ["00000000000000a1"]
    assert merged_names(store, "alice-source-1") == {"root/a": 8 * MIB}

    small, small_length = tar_of({"root/c": MIB})
    with pytest.raises(NoRoom) as full:  # asked first: nothing is written on a full disk
        store.receive("source", "alice-source-1", "00000000000000c3", first["refresh"], small, small_length, INSTANCE)
    assert "disk" in full.value.message and full.value.detail["room"] == 0
    filler.unlink()
    delta.seek(0)
    store.receive("source", "alice-source-1", "00000000000000b2", first["refresh"], delta, length, INSTANCE)
    assert merged_names(store, "alice-source-1") == {"root/a": 8 * MIB, "root/b": 40 * MIB}


def test_a_replica_goes_to_another_holder_when_its_holder_dies_and_not_where_there_is_no_room(
        tmp_path, keypair, engine, cleanup):
    """Three members. The spare's disk for replicas is a real 600 MiB filesystem, too small for the
    instance: the first refresh lands on the target. The target dies: the next refresh finds the
    spare has no room and says so (the replica on the dead target is still listed, not live).
    The spare's disk grows: the next refresh is a full copy there, whole. The old holder, back,
    has its stale copy deleted; a replica of an instance removed while its holder was down goes
    when the holder is back."""
    with three_providers(tmp_path) as (_source, target, spare, _engine2), \
            tmpfs(spare.directory / "replicas" / "held", "600m") as held:
        made = requests.post(f"{SOURCE}/v1/instances", headers=ALICE, timeout=180,
                             json={"public_key": keypair[1], "memory_reservation": "128m"})
        assert made.status_code == 201, made.text
        name = made.json()["name"]
        wrote = ssh_run(keypair[0], made.json()["ssh"]["port"], "head -c 150M /dev/urandom > /root/payload")
        assert wrote.returncode == 0, wrote.stderr
        time.sleep(1.1)
        first = requests.post(f"{SOURCE}/v1/instances/{name}/replicate", headers=ALICE, timeout=600)
        assert first.status_code == 200 and first.json()["holder"] == "target", first.text
        assert not list(held.rglob("*.tar"))  # the spare, if asked first, took nothing

        target.kill()  # the holder's machine stops
        until(lambda: "target" not in members(SOURCE), 30, "the source never expired the target")
        # The lease (fleet/lease.py) stopped the instance while its holder was silent; the holder gone
        # from the fleet while the spare still answers, it runs again before the next refresh.
        until(lambda: requests.get(f"{SOURCE}/v1/instances/{name}", headers=ALICE, timeout=10).json()["state"]
              == "running", 30, "the lease never let the instance run again once its holder left the fleet")
        refused = requests.post(f"{SOURCE}/v1/instances/{name}/replicate", headers=ALICE, timeout=600)
        assert refused.status_code == 409, refused.text
        [reason] = refused.json()["detail"]["reasons"]
        assert reason.startswith("spare:") and "does not fit" in reason, reason
        [kept] = requests.get(f"{SOURCE}/v1/instances/{name}/replicas", headers=ALICE, timeout=10).json()["replicas"]
        assert kept["holder"] == "target" and kept["live"] is False and kept["refresh"] == first.json()["refresh"]

        subprocess.run(["mount", "-o", "remount,size=2g", str(held)], check=True)
        moved = requests.post(f"{SOURCE}/v1/instances/{name}/replicate", headers=ALICE, timeout=600)
        assert moved.status_code == 200, moved.text
        assert moved.json()["holder"] == "spare" and moved.json()["full"] is True, moved.text
        store = ReplicaStore(str(held), 10 * 1024**3)
        assert merged_names(store, name)["root/payload"] == 150 * MIB

        # The old holder comes back: its stale copy is deleted (a client must not restore an old one).
        stale = ReplicaStore(str(target.directory / "replicas" / "held"), 10 * 1024**3)
        assert stale.chain("source", name) is not None
        target.start()
        until(lambda: stale.chain("source", name) is None, 30, "the old holder kept its stale replica")
        # The instance is removed while its holder is down: the holder deletes it once it is back.
        spare.kill()
        until(lambda: "spare" not in members(SOURCE), 30, "the source never expired the spare")
        assert requests.delete(f"{SOURCE}/v1/instances/{name}", headers=ALICE, timeout=60).status_code == 200
        assert store.chain("source", name) is not None
        spare.start()
        until(lambda: store.chain("source", name) is None, 30, "the holder kept the replica of a removed instance")


@pytest.mark.parametrize("setting, value", [("replica_interval", 0), ("replica_interval", "600"),
                                            ("replica_max_bytes", -1), ("replica_all", "yes"),
                                            ("replica_refreshes_per_hour", 0), ("replica_client_refreshes_per_hour", "30"),
                                            ("replica_client_share", 0), ("replica_client_share", 1.5)])
def test_replica_settings_out_of_range_are_refused_naming_them(tmp_path, setting, value):
    with pytest.raises(InvalidInput) as refused:
        config_from_dict(make_config(tmp_path, **{setting: value}))
    assert refused.value.field == setting, refused.value.message


def test_a_client_restores_her_instance_from_its_replica_once_its_provider_is_gone_and_it_never_runs_twice(
        tmp_path, keypair, engine, cleanup):
    """Part 4: refused while the provider is live; after a sudden stop (API killed, instance
    killed) and its expiry, `dockpool restore` starts it on the holder with its files, name and key
    and rewrites the SSH entry. The provider, back, never runs its old copy: fenced before it
    serves, removed once the holder says it was restored, and its owner forwarded there."""
    with two_providers(tmp_path) as (source, target, engine2):
        home = tmp_path / "client"
        for url in (SOURCE, TARGET):
            assert cli(home, "login", url, "--token", TOKENS["alice"]).returncode == 0
        made = cli(home, "up", "--provider", SOURCE, "--key", str(keypair[0]), "--memory-reservation", "128m",
                   "--replica", "--no-check", "--json")
        assert made.returncode == 0, made.stderr
        view = json.loads(made.stdout)
        name = view["name"]
        assert ssh_run(keypair[0], view["ssh"]["port"], "echo 'before the stop' > /root/notes.txt").returncode == 0
        time.sleep(1.1)  # the file's second is over: the refresh takes it as it is
        replicated = cli(home, "replicate", name, "--json")
        assert replicated.returncode == 0, replicated.stderr
        assert json.loads(replicated.stdout)[0]["holder"] == "target"
        shown = cli(home, "replicas", name)
        assert shown.returncode == 0 and "target" in shown.stdout, shown.stdout

        other = requests.post(f"{SOURCE}/v1/instances", headers=ALICE, timeout=180,
                              json={"public_key": keypair[1], "memory_reservation": "64m", "replica": True}).json()
        assert requests.post(f"{SOURCE}/v1/instances/{other['name']}/replicate", headers=ALICE,
                             timeout=600).status_code == 200

        early = cli(home, "restore", name, "--no-check")
        assert early.returncode == 5 and "live member" in early.stderr, early.stderr  # no two copies
        assert not [c for c in engine2.containers.list(all=True) if c.labels.get("dockpool.name") == name]

        source.kill()  # the power goes out: the API and the instance with it
        engine.api.kill(view["id"])
        engine.api.kill(other["id"])
        until(lambda: not members(TARGET), 30, "the target never expired the source")

        restored = cli(home, "restore", name, "--no-check", "--json")
        assert restored.returncode == 0, restored.stderr
        back = json.loads(restored.stdout)
        assert back["name"] == name and back["ssh"]["host"] == "127.0.0.3" and back["replica"] is True
        notes = ssh_run(keypair[0], back["ssh"]["port"], "cat /root/notes.txt")
        assert notes.stdout.strip() == "before the stop", notes.stderr
        entries = (home / "dockpool" / "ssh_config").read_text()
        assert f"Port {back['ssh']['port']}" in entries and f"Port {view['ssh']['port']}" not in entries, entries
        assert json.loads((home / "dockpool" / "config.json").read_text())["instances"][name]["provider"] == TARGET
        again = requests.post(f"{TARGET}/v1/replicas/source/{name}/restore", headers=ALICE, timeout=60)
        assert again.status_code == 409 and "already" in again.json()["error"], again.text

        # The machine comes back: its engine starts the instance (restart policy), then the API.
        engine.api.start(view["id"])
        engine.api.start(other["id"])
        source.start()
        assert engine.containers.get(view["id"]).status != "running"  # fenced before the API served
        fenced = requests.post(f"{SOURCE}/v1/instances/{view['name']}/start", headers=ALICE, timeout=60)
        assert fenced.status_code in (404, 409), fenced.text  # fenced (409), or already removed (404)
        until(lambda: not [c for c in engine.containers.list(all=True) if c.id == view["id"]], 30,
              "the source kept its copy of the restored instance")
        gone = requests.get(f"{SOURCE}/v1/instances/{name}", headers=ALICE, timeout=10)
        assert gone.status_code == 404 and gone.json()["detail"]["moved_to"]["provider"] == "target", gone.text
        store = ReplicaStore(str(target.directory / "replicas" / "held"), 10 * 1024**3)
        assert store.chain("source", name) is None  # the mark went once the source had heard it
        assert engine2.containers.get(back["id"]).status == "running"  # the one copy
        # The one not restored runs again here once its holder said so, and keeps its replica.
        until(lambda: engine.containers.get(other["id"]).status == "running", 30,
              "the instance that was not restored stayed fenced")
        assert store.chain("source", other["name"]) is not None


BOB = {"Authorization": f"Bearer {TOKENS['bob']}"}


def replicate(name: str, headers: dict) -> requests.Response:
    return requests.post(f"{SOURCE}/v1/instances/{name}/replicate", headers=headers, timeout=600)


def new_instance(headers: dict, public_key: str, command: str = "", key=None) -> dict:
    made = requests.post(f"{SOURCE}/v1/instances", headers=headers, timeout=180,
                         json={"public_key": public_key, "memory_reservation": "64m"})
    assert made.status_code == 201, made.text
    if command:
        assert ssh_run(key, made.json()["ssh"]["port"], command).returncode == 0
    return made.json()


def test_refreshes_a_client_asks_for_are_limited_per_instance_and_charged_to_her_usage_and_budget(
        tmp_path, keypair, engine, cleanup):
    """Issue 34, item 13: six refreshes of one instance an hour (the default, as a cloud's disk
    snapshots), the seventh 429 with Retry-After naming the limit; what the refreshes cost
    (the bytes shipped, the provider's CPU time) in her usage and against her package's budgets."""
    clients = make_config(tmp_path)["clients"]
    clients[0]["package"] = "replicated"  # alice
    package = {"replicated": {"budgets": {"egress_gib": 100, "cpu_hours": 100}}}
    with two_providers(tmp_path, api={"clients": clients, "packages": package}):
        view = new_instance(ALICE, keypair[1])
        shipped = []
        for _ in range(6):
            answer = replicate(view["name"], ALICE)
            assert answer.status_code == 200, answer.text
            shipped.append(answer.json()["shipped_bytes"])
        refused = replicate(view["name"], ALICE)
        assert refused.status_code == 429, refused.text
        assert refused.json()["field"] == "replica_refreshes_per_hour" and "6 per hour" in refused.json()["error"]
        assert 0 < int(refused.headers["Retry-After"]) <= 3600, refused.headers
        assert refused.json()["detail"]["retry_after"] == int(refused.headers["Retry-After"])

        usage = requests.get(f"{SOURCE}/v1/usage", headers=ALICE, timeout=10).json()
        [row] = usage["instances"]  # no watchdog runs here: only what the refreshes were charged
        assert row["name"] == view["name"] and row["tx_bytes"] == sum(shipped), (row, shipped)
        cpu = row["cpu_seconds"]
        assert 0 < cpu < 120, row
        egress = {b["budget"]: b for b in usage["budgets"]}["egress_gib"]
        assert egress["used"] == pytest.approx(sum(shipped) / 1024**3, abs=1e-6), egress
        assert requests.get(f"{SOURCE}/v1/usage", headers=BOB, timeout=10).json()["instances"] == []


def test_refreshes_are_limited_per_client_across_her_instances_and_the_cli_says_when_to_retry(
        tmp_path, keypair, other_keypair, engine, cleanup):
    """Three of all alice's an hour here; bob's own count, and his spent budget refuses his next (402)."""
    clients = make_config(tmp_path)["clients"]
    clients[1]["package"] = "tiny"  # bob: his first refresh's bytes spend it
    package = {"tiny": {"budgets": {"egress_gib": 0.000001}}}
    with two_providers(tmp_path, api={"replica_client_refreshes_per_hour": 3, "clients": clients, "packages": package}):
        first, second = new_instance(ALICE, keypair[1]), new_instance(ALICE, keypair[1])
        for name in (first["name"], first["name"], second["name"]):
            assert replicate(name, ALICE).status_code == 200
        refused = replicate(second["name"], ALICE)
        assert refused.status_code == 429 and refused.json()["field"] == "replica_client_refreshes_per_hour", refused.text
        assert "alice" in refused.json()["error"] and "3 per hour" in refused.json()["error"]
        assert int(refused.headers["Retry-After"]) > 0
        bobs = new_instance(BOB, other_keypair[1])
        assert replicate(bobs["name"], BOB).status_code == 200  # another client's own count
        spent = replicate(bobs["name"], BOB)
        assert spent.status_code == 402 and spent.json()["detail"]["budget"] == "egress_gib", spent.text
        home = tmp_path / "client"
        assert cli(home, "login", SOURCE, "--token", TOKENS["alice"]).returncode == 0
        shown = cli(home, "replicate", second["name"])
        assert shown.returncode != 0 and "429" in shown.stderr and "try again in" in shown.stderr, shown.stderr


def test_a_holder_keeps_each_client_to_her_share_while_another_clients_replica_still_fits(
        tmp_path, keypair, other_keypair, engine, cleanup):
    """The holder keeps 2 GiB of replicas; each client may take a quarter of it (the default share):
    alice's first instance fits, her second (200 MiB more) does not, and bob's still does."""
    with two_providers(tmp_path, api={"replica_max_bytes": 2 * 1024**3}) as (_source, target, _engine2):
        small = new_instance(ALICE, keypair[1])
        big = new_instance(ALICE, keypair[1], "head -c 200M /dev/urandom > /root/payload", keypair[0])
        time.sleep(1.1)
        fits = replicate(small["name"], ALICE)
        assert fits.status_code == 200 and fits.json()["holder"] == "target", fits.text
        assert fits.json()["shipped_bytes"] < 512 * MIB
        refused = replicate(big["name"], ALICE)
        assert refused.status_code == 409, refused.text
        [reason] = refused.json()["detail"]["reasons"]
        assert reason.startswith("target:") and "alice's share" in reason and "replica_client_share" in reason, reason
        assert requests.get(f"{SOURCE}/v1/instances/{big['name']}/replicas", headers=ALICE, timeout=10).json()[
            "replicas"] == []
        assert replicate(new_instance(BOB, other_keypair[1])["name"], BOB).status_code == 200
        store = ReplicaStore(str(target.directory / "replicas" / "held"), 10 * 1024**3)
        assert sorted(r["owner"] for r in store.owned_by(None)) == ["alice", "bob"]


def test_a_holder_refuses_a_refresh_over_its_clients_share_naming_it_and_keeps_nothing(tmp_path):
    """The holder's own check (a source that did not ask first): 4 MiB kept, a quarter each."""
    store = ReplicaStore(str(tmp_path / "held"), max_bytes=4 * MIB, client_share=0.25)
    body, length = tar_of({"root/a": 600 * 1024})
    store.receive("one", "alice-one-1", "00000000000000a1", "", body, length, INSTANCE)
    body, length = tar_of({"root/b": 600 * 1024})
    with pytest.raises(NoRoom) as refused:
        store.receive("two", "alice-two-1", "00000000000000a2", "", body, length, INSTANCE)  # hers, from another member
    assert refused.value.field == "replica_client_share" and refused.value.http_status == 507
    assert "alice's share" in refused.value.message, refused.value.message
    assert store.status("two", "alice-two-1", "alice")["limit_full"] == "replica_client_share"
    body.seek(0)
    store.receive("two", "bob-two-1", "00000000000000b1", "", body, length, {**INSTANCE, "owner": "bob"})
    assert sorted(name for _source, name in store.held()) == ["alice-one-1", "bob-two-1"]


@contextmanager
def partition(*listeners: tuple[str, int]) -> Iterator[None]:
    """Cut each fleet listener off (every packet to it dropped, both members' directions), on this
    machine's loopback only and only for the test fleets' port; taken away afterwards."""
    rules = [["INPUT", "-d", f"{address}/32", "-p", "tcp", "--dport", str(port), "-m", "comment",
              "--comment", "dockpool-test-partition", "-j", "DROP"] for address, port in listeners]
    for rule in rules:
        subprocess.run(["iptables", "-w", "-I", *rule], check=True, capture_output=True, timeout=30)
    try:
        yield
    finally:
        for rule in rules:
            subprocess.run(["iptables", "-w", "-D", *rule], capture_output=True, timeout=30)


def test_a_provider_cut_off_from_its_replicas_holder_stops_the_instance_before_the_holder_can_restore_it(
        tmp_path, keypair, engine, cleanup):
    """Issue 34, item 11: the lease. Connected, nothing stops for three expiries. Cut off in both
    directions, the source stops (never removes) its replicated instance within half the expiry,
    says why to its owner, and refuses to start it, all before the holder expires the source
    (when a restore there would be allowed); once the holder answers again, it runs again."""
    with two_providers(tmp_path) as (_source, _target, _engine2):
        made = requests.post(f"{SOURCE}/v1/instances", headers=ALICE, timeout=180,
                             json={"public_key": keypair[1], "memory_reservation": "64m", "replica": True})
        assert made.status_code == 201, made.text
        view = made.json()
        assert requests.post(f"{SOURCE}/v1/instances/{view['name']}/replicate", headers=ALICE,
                             timeout=600).json()["holder"] == "target"
        expiry = 5.0  # two_providers' peer_expiry
        time.sleep(3 * expiry)  # a connected fleet: the lease is renewed, nothing stops
        assert engine.containers.get(view["id"]).status == "running"
        assert members(TARGET) == ["source"] and members(SOURCE) == ["target"]

        with partition(("127.0.0.1", FLEET_PORT), ("127.0.0.3", FLEET_PORT)):
            cut = time.monotonic()
            until(lambda: engine.containers.get(view["id"]).status != "running", 2 * expiry,
                  "the source kept running its replicated instance while cut off")
            stopped = time.monotonic() - cut
            [shown] = requests.get(f"{SOURCE}/v1/instances/{view['name']}/replicas", headers=ALICE,
                                   timeout=10).json()["replicas"]
            refused = requests.post(f"{SOURCE}/v1/instances/{view['name']}/start", headers=ALICE, timeout=60)
            still_member = members(TARGET) == ["source"]  # the holder has not expired the source yet
            until(lambda: not members(TARGET), 6 * expiry, "the holder never expired the source")
            expired = time.monotonic() - cut
        print(f"cut off: the instance stopped after {stopped:.1f} s, the holder expired the source after {expired:.1f} s")
        assert still_member and stopped < expiry < expired, (stopped, expired)
        assert shown["fenced"] and "target" in shown["fenced"] and "did not answer" in shown["fenced"], shown
        assert refused.status_code == 409 and "did not answer" in refused.json()["error"], refused.text
        assert engine.containers.get(view["id"])  # stopped, never removed
        # The holder answers again and did not restore it: it runs again, with its replica.
        until(lambda: engine.containers.get(view["id"]).status == "running", 12 * expiry,
              "the instance stayed stopped after its holder answered again")
        [after] = requests.get(f"{SOURCE}/v1/instances/{view['name']}/replicas", headers=ALICE,
                               timeout=10).json()["replicas"]
        assert after["fenced"] is None and after["holder"] == "target", after

"""Moving an instance between two providers with separate Docker engines on this machine:
real API processes (the source on this machine's engine, the target on a second one),
the real CLI, real SSH into both instances, a real SIGKILL of the target mid-transfer."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import requests

from dockpool.client_requests import move_request
from dockpool.snapshots import MOVE_LABEL
from support.api_config import TOKENS, remove_client_instances
from support.cli import cli
from support.ssh import make_keypair, ssh_run
from support.two_providers import SOURCE, TARGET, two_providers

pytestmark = pytest.mark.engine
INSTALL = ("mkdir -p /tmp/pkg/DEBIAN /tmp/pkg/usr/share/dockpool-moved && "
           "printf 'Package: dockpool-moved\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: t <t@example.invalid>\\n"
           "Description: written before the move\\n' > /tmp/pkg/DEBIAN/control && "
           "echo installed > /tmp/pkg/usr/share/dockpool-moved/proof && "
           "dpkg-deb --build /tmp/pkg /tmp/moved.deb >/dev/null && dpkg -i /tmp/moved.deb >/dev/null && "
           "echo 'my notes' > /root/notes.txt")


def client_with_instance(tmp_path, keypair, engine, disk_limit: str = "1g") -> tuple[Path, str, dict]:
    home = tmp_path / "client"
    for url in (SOURCE, TARGET):
        assert cli(home, "login", url, "--token", TOKENS["alice"]).returncode == 0
    made = cli(home, "up", "--provider", SOURCE, "--key", str(keypair[0]), "--memory", "128m", "--disk-limit", disk_limit,
               "--no-check", "--json")
    assert made.returncode == 0, made.stderr
    view = json.loads(made.stdout)
    return home, view["name"], view


def snapshots(client) -> list:
    return client.images.list(filters={"label": MOVE_LABEL})


@pytest.fixture
def cleanup(engine):
    """The clients' instances, then any snapshot left on this machine's engine."""
    yield
    remove_client_instances(engine)
    for image in snapshots(engine):
        engine.images.remove(image.id, force=True)


def test_an_instance_moves_with_its_files_and_packages(tmp_path, keypair, engine, cleanup):
    with two_providers(tmp_path) as (source, target, engine2):
        home, name, view = client_with_instance(tmp_path, keypair, engine)
        wrote = ssh_run(keypair[0], view["ssh"]["port"], INSTALL)
        assert wrote.returncode == 0, wrote.stderr
        moved = cli(home, "move", name, "--to", TARGET, "--no-check")
        assert moved.returncode == 0, moved.stderr
        there = json.loads((home / "dockpool" / "config.json").read_text())["instances"]
        new_name = next(n for n, v in there.items() if v["provider"] == TARGET)
        assert new_name == "alice-target-1" and name not in there
        instance = requests.get(f"{TARGET}/v1/instances/{new_name}", headers={"Authorization": f"Bearer {TOKENS['alice']}"},
                                timeout=10).json()
        assert instance["image"] == "debian-sshd" and instance["limits"]["memory_reservation"] == 128 * 2**20
        port = instance["ssh"]["port"]
        assert 46000 <= port <= 46019  # the target's own port range
        proof = ssh_run(keypair[0], port, "cat /root/notes.txt; dpkg -s dockpool-moved | grep Status; "
                                          "cat /usr/share/dockpool-moved/proof")
        assert proof.returncode == 0, proof.stderr
        assert proof.stdout.split("\n")[:3] == ["my notes", "Status: install ok installed", "installed"]
        assert not [c for c in engine.containers.list(all=True) if c.name == name]  # removed from the source
        assert snapshots(engine) == []  # the source's snapshot is gone
        entries = (home / "dockpool" / "ssh_config").read_text()
        assert "Host alice-target-1" in entries and f"Host {name}\n" not in entries  # the SSH entry rewritten
        assert len(snapshots(engine2)) == 1  # the moved instance runs from its snapshot ...
        assert cli(home, "rm", new_name).returncode == 0
        assert snapshots(engine2) == []  # ... which goes with it


def test_a_move_that_cannot_happen_leaves_the_instance_where_it_was(tmp_path, keypair, engine, cleanup):
    with two_providers(tmp_path, target_limits={"max_memory": "96m", "default_memory": "96m"}) as (source, target, engine2):
        home, name, view = client_with_instance(tmp_path, keypair, engine)
        started = engine.containers.get(view["id"]).attrs["State"]["StartedAt"]
        # The target cannot take 128m: refused by the target before the source stops.
        refused = cli(home, "move", name, "--to", TARGET, "--no-check")
        assert refused.returncode == 5 and "memory" in refused.stderr, refused.stderr
        # A token the target does not know: refused before the source stops.
        config = home / "dockpool" / "config.json"
        settings = json.loads(config.read_text())
        settings["providers"][TARGET]["token"] = "not-a-token-of-the-target"
        config.write_text(json.dumps(settings))
        unknown = cli(home, "move", name, "--to", TARGET, "--no-check")
        assert unknown.returncode == 3 and "401" in unknown.stderr
        still = engine.containers.get(view["id"])
        assert still.status == "running" and still.attrs["State"]["StartedAt"] == started  # never stopped
        assert snapshots(engine) == [] and snapshots(engine2) == []
        assert not engine2.containers.list(all=True, filters={"label": "dockpool.owner=alice"})


def test_a_full_target_answers_409_and_the_source_is_untouched(tmp_path, keypair, engine, cleanup):
    # The target has one instance port, taken by an instance of bob's: no room for alice's.
    with two_providers(tmp_path, target_ports="46000-46000") as (source, target, engine2):
        taken = requests.post(f"{TARGET}/v1/instances", headers={"Authorization": f"Bearer {TOKENS['bob']}"}, timeout=180,
                              json={"public_key": make_keypair(tmp_path, "bob")[1], "memory": "128m"})
        assert taken.status_code == 201, taken.text
        home, name, view = client_with_instance(tmp_path, keypair, engine)
        started = engine.containers.get(view["id"]).attrs["State"]["StartedAt"]
        full = cli(home, "move", name, "--to", TARGET, "--no-check")
        assert full.returncode == 5 and "409" in full.stderr, full.stderr
        assert engine.containers.get(view["id"]).attrs["State"]["StartedAt"] == started  # never stopped
        assert snapshots(engine) == [] and snapshots(engine2) == []


def test_an_instance_over_its_disk_limit_is_refused(tmp_path, keypair, engine, cleanup):
    with two_providers(tmp_path) as (source, target, engine2):
        home, name, view = client_with_instance(tmp_path, keypair, engine, disk_limit="200m")
        # The watchdog stops an instance over its limit every 30 s; here the move checks it itself.
        limit = view["limits"]["disk_limit"]
        grow = ssh_run(keypair[0], view["ssh"]["port"], f"head -c {limit + 2**20} /dev/zero > /root/big")
        assert grow.returncode == 0, grow.stderr
        refused = cli(home, "move", name, "--to", TARGET, "--no-check")
        assert refused.returncode == 5 and "disk limit" in refused.stderr, refused.stderr
        assert engine.containers.get(view["id"]).status == "running"
        assert snapshots(engine) == [] and snapshots(engine2) == []


def test_the_target_dying_mid_transfer_leaves_the_source_running_and_nothing_on_the_target(tmp_path, keypair, engine, cleanup):
    with two_providers(tmp_path) as (source, target, engine2):
        home, name, view = client_with_instance(tmp_path, keypair, engine)
        # 400 MiB that do not compress, so the transfer lasts long enough to be cut.
        wrote = ssh_run(keypair[0], view["ssh"]["port"], "head -c 400M /dev/urandom > /root/payload; echo 'my notes' > /root/notes.txt")
        assert wrote.returncode == 0, wrote.stderr
        result: dict = {}
        mover = threading.Thread(target=lambda: result.update(done=cli(home, "move", name, "--to", TARGET, "--no-check")))
        mover.start()
        deadline = time.monotonic() + 120
        while engine.containers.get(view["id"]).status == "running":  # the source stops it, then streams it
            assert time.monotonic() < deadline and mover.is_alive(), result
            time.sleep(0.1)
        # Nobody starts it while its filesystem streams: that would change what the target receives.
        started = requests.post(f"{SOURCE}/v1/instances/{name}/start", timeout=30,
                                headers={"Authorization": f"Bearer {TOKENS['alice']}"})
        assert started.status_code == 409 and "being moved" in started.json()["error"], started.text
        time.sleep(1.0)  # the target is importing it
        target.kill()
        mover.join(timeout=300)
        assert result["done"].returncode != 0
        back = engine.containers.get(view["id"])
        assert back.status == "running"  # started again
        notes = ssh_run(keypair[0], view["ssh"]["port"], "cat /root/notes.txt")
        assert notes.stdout.strip() == "my notes"
        assert snapshots(engine) == []
        target.start()  # after its restart: no half-made instance or image
        assert snapshots(engine2) == []
        assert not engine2.containers.list(all=True, filters={"label": "dockpool.owner=alice"})


# Values a move request never carries (issue 34, item 15): each used to stop and restart the
# instance and answer 500, and the last reached the target as /v1/moves/../../fleet/exchange/pull.
UNFIT_MOVE_VALUES = [("move", "a b"), ("move", "abc\r\nX-Evil: 1"), ("grant", "g\r\nX-Evil: 1"),
                     ("move", "..%2F..%2Ffleet%2Fexchange"), ("move", "../../fleet/exchange"), ("grant", 7)]


def test_move_values_outside_their_pattern_are_refused_before_the_instance_stops(tmp_path, keypair, engine, cleanup):
    with two_providers(tmp_path) as (source, target, engine2):
        home, name, view = client_with_instance(tmp_path, keypair, engine)
        started = engine.containers.get(view["id"]).attrs["State"]["StartedAt"]
        alice = {"Authorization": f"Bearer {TOKENS['alice']}"}
        offer = requests.post(f"{TARGET}/v1/moves", headers=alice, timeout=60,
                              json={**move_request(view, keypair[1]), "source": "source"})
        assert offer.status_code == 201, offer.text
        good = {"target": "target", "move": offer.json()["id"], "grant": offer.json()["grant"]}
        for field, value in UNFIT_MOVE_VALUES + [("move", good["move"] + "\n"), ("grant", good["grant"] + "\n")]:
            answer = requests.post(f"{SOURCE}/v1/instances/{name}/move", json={**good, field: value}, headers=alice,
                                   timeout=60)
            assert answer.status_code == 400 and answer.json()["field"] == field, (field, value, answer.text)
        still = engine.containers.get(view["id"])
        assert still.status == "running" and still.attrs["State"]["StartedAt"] == started  # never stopped
        # The target was never told anything: its grant is untouched, and moves the instance still.
        assert requests.get(f"{TARGET}/v1/moves/{good['move']}", headers=alice, timeout=10).json()["state"] == "granted"
        moved = requests.post(f"{SOURCE}/v1/instances/{name}/move", json=good, headers=alice, timeout=600)
        assert moved.status_code == 200 and moved.json()["instance"]["name"] == "alice-target-1", moved.text


def ssh_entry(home: Path, host: str) -> str:
    """The block the CLI wrote for ``host`` in its SSH config ("" when there is none)."""
    text = (home / "dockpool" / "ssh_config").read_text()
    begin, end = f"# >>> dockpool {host}\n", f"# <<< dockpool {host}\n"
    return text[text.index(begin):text.index(end)] if begin in text else ""


def test_a_move_keeps_the_alias_of_an_instance(tmp_path, keypair, engine, cleanup):
    """Alice named her instance (`up --name box`); a drain moved it and `dockpool ls` followed it,
    keeping alice-box as an alias of its new place. Moving it on keeps the alias too: in the record,
    and as an SSH entry that leads where the instance is now (before: dropped from the record, its
    entry left at the place it was moved from); `rm` removes it with the instance."""
    ops, alice = ({"Authorization": f"Bearer {TOKENS[who]}"} for who in ("ops", "alice"))
    with two_providers(tmp_path) as (source, target, engine2):
        home = tmp_path / "client"
        for url in (SOURCE, TARGET):
            assert cli(home, "login", url, "--token", TOKENS["alice"]).returncode == 0
        made = cli(home, "up", "--provider", SOURCE, "--name", "box", "--key", str(keypair[0]), "--memory", "128m",
                   "--no-check", "--json")
        assert made.returncode == 0 and json.loads(made.stdout)["name"] == "alice-box", made.stderr
        assert requests.put(f"{SOURCE}/v1/drain", json={"draining": True}, headers=ops, timeout=10).ok
        drained = requests.post(f"{SOURCE}/v1/drain/moves", headers=ops, timeout=600)
        assert drained.status_code == 200, drained.text
        [away] = [m["as"] for m in drained.json()["moved"] if m["name"] == "alice-box"]
        assert requests.put(f"{SOURCE}/v1/drain", json={"draining": False}, headers=ops, timeout=10).ok
        assert cli(home, "ls", "--json").returncode == 0  # follows it to the target
        config = home / "dockpool" / "config.json"
        assert json.loads(config.read_text())["instances"][away]["aliases"] == ["alice-box"]
        moved = cli(home, "move", away, "--to", SOURCE, "--no-check")
        assert moved.returncode == 0, moved.stderr
        records = json.loads(config.read_text())["instances"]
        [back] = [n for n, v in records.items() if v["provider"] == SOURCE]
        assert back != "alice-box" and away not in records and records[back].get("aliases") == ["alice-box"], records
        port = requests.get(f"{SOURCE}/v1/instances/{back}", headers=alice, timeout=10).json()["ssh"]["port"]
        assert f"    Port {port}\n" in ssh_entry(home, back) and f"    Port {port}\n" in ssh_entry(home, "alice-box")
        assert ssh_entry(home, away) == ""  # a move the client asked for drops the name it had
        assert cli(home, "rm", back).returncode == 0
        assert ssh_entry(home, back) == ssh_entry(home, "alice-box") == ""

"""A provider's owner takes the machine back (issue 24, its first part): while the provider is
draining it takes no new instance, created or moved in, says where to go instead, and the
fleet and the CLI show it. Real API processes, the real engine and the real CLI."""
from __future__ import annotations

import json
import sys
import threading
import time

import pytest
import requests
import yaml
from webtest import TestApp

from dockpool import snapshots
from dockpool.cputopology import read_topology
from dockpool.errors import InvalidInput
from dockpool.instances import InstanceManager
from dockpool.policy import load_policy
from dockpool.sshprobe import wait_for_ssh
from dockpool_api.app import make_app
from dockpool_api.auth import hash_token
from dockpool_api.config import config_from_dict
from support.ansible_run import run_playbook_file
from support.api_config import TOKENS, make_config
from support.api_process import api_process, free_port
from support.cli import cli
from support.paths import ROOT
from support.ssh import ssh_run
from support.two_providers import SOURCE, TARGET, two_providers

pytestmark = pytest.mark.engine
PLAY = ROOT / "playbooks" / "drain.yml"
OPERATOR = "operator-local-token-0123456789abcdef"  # the provider's root-only credential (provider_api role)


def auth(who: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


def operator_file(tmp_path) -> tuple:
    """The operator's local credential as the role leaves it: a file only root reads, and its hash
    for the service's settings."""
    token = tmp_path / "operator.token"
    token.write_text(OPERATOR + "\n")
    token.chmod(0o600)
    return token, {"operator_token_sha256": hash_token(OPERATOR)}


def test_the_operators_local_credential_opens_the_drain_routes_from_this_machine_and_nothing_else(tmp_path):
    """It is no client token: every client and admin route refuses it, and so does the drain when the
    caller is not on the provider itself (a request the HTTPS front forwards from elsewhere)."""
    _, hashed = operator_file(tmp_path)
    settings = make_config(tmp_path, clients=[], tls_port=free_port(), **hashed)
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    with api_process(tmp_path, settings) as url:
        early = requests.post(f"{url}/v1/drain/moves", headers=operator, timeout=30)
        assert early.status_code == 409 and "not draining" in early.json()["error"], early.text  # let in
        started = requests.put(f"{url}/v1/drain", json={"draining": True}, headers=operator, timeout=10)
        assert started.status_code == 200 and started.json()["draining"] is True, started.text
        for method, path in (("GET", "/v1/instances"), ("POST", "/v1/instances"), ("GET", "/v1/usage"),
                             ("DELETE", "/v1/peers/someone")):
            refused = requests.request(method, f"{url}{path}", headers=operator, json={}, timeout=10)
            assert refused.status_code == 401 and refused.json()["field"] == "Authorization", (path, refused.text)
        forwarded = {**operator, "X-Forwarded-For": "192.0.2.7"}  # as the front passes a remote caller on
        remote = requests.put(f"{url}/v1/drain", json={"draining": False}, headers=forwarded, timeout=10)
        assert remote.status_code == 401 and "this machine" in remote.json()["error"], remote.text
        assert requests.get(f"{url}/v1/drain", timeout=10).json()["draining"] is True


def test_a_bad_operator_credential_hash_stops_the_start_naming_the_setting(tmp_path):
    with pytest.raises(InvalidInput) as refused:
        config_from_dict(make_config(tmp_path, operator_token_sha256="not-a-hash"))
    assert refused.value.field == "operator_token_sha256" and "SHA-256" in refused.value.message


def test_drain_without_the_local_credential_fails_before_any_call_saying_what_to_run(tmp_path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"providers": {"hosts": {"alone": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "provider_api_port": 9,
        "provider_api_operator_token_file": str(tmp_path / "missing.token")}}}}))
    played = run_playbook_file(PLAY, inventory=str(inventory), host="alone")
    assert played.rc == 2 and not [t for t in played.tasks if "status" in t], played.raw
    failed = next(t for t in played.tasks if t.get("failed"))
    assert str(tmp_path / "missing.token") in failed["msg"] and "provision.yml" in failed["msg"], failed


def test_a_draining_provider_refuses_new_instances_says_why_and_keeps_the_state_across_restarts(tmp_path, keypair,
                                                                                                   cleanup):
    settings = make_config(tmp_path)
    with api_process(tmp_path, settings) as url:
        assert requests.get(f"{url}/v1/drain", timeout=10).json() == {"draining": False, "since": None}
        by_client = requests.put(f"{url}/v1/drain", json={"draining": True}, headers=auth("alice"), timeout=10)
        assert by_client.status_code in (401, 403, 404) and not requests.get(f"{url}/v1/drain", timeout=10).json()["draining"]
        wrong = requests.put(f"{url}/v1/drain", json={"draining": "yes"}, headers=auth("ops"), timeout=10)
        assert wrong.status_code == 400 and wrong.json()["field"] == "draining"
        started = requests.put(f"{url}/v1/drain", json={"draining": True}, headers=auth("ops"), timeout=10).json()
        assert started["draining"] is True and started["since"]
        refused = requests.post(f"{url}/v1/instances", json={"public_key": keypair[1]}, headers=auth("alice"), timeout=30)
        assert refused.status_code == 409, refused.text
        assert "draining" in refused.json()["error"] and refused.json()["detail"]["draining"] is True
        assert requests.get(f"{url}/healthz", timeout=10).json()["draining"] is True
    with api_process(tmp_path, settings) as url:  # restarted: still draining, since the same time
        assert requests.get(f"{url}/v1/drain", timeout=10).json() == started
        assert requests.post(f"{url}/v1/instances", json={"public_key": keypair[1]}, headers=auth("alice"),
                             timeout=30).status_code == 409
        ended = requests.put(f"{url}/v1/drain", json={"draining": False}, headers=auth("ops"), timeout=10).json()
        assert ended == {"draining": False, "since": None}
        made = requests.post(f"{url}/v1/instances", json={"public_key": keypair[1]}, headers=auth("alice"), timeout=120)
        assert made.status_code == 201, made.text


@pytest.mark.parametrize("setting, file, text", [("drain_file", "drain.json", "{not json"),
                                                  ("moves_file", "moves.json", '{"out": []}')])
def test_an_unreadable_drain_state_or_moves_journal_stops_the_start_naming_the_file(tmp_path, setting, file, text):
    """Neither is reset silently: the journal names moves whose instance may run elsewhere."""
    settings = make_config(tmp_path)
    (tmp_path / file).write_text(text)
    with pytest.raises(InvalidInput) as refused:
        TestApp(make_app(config_from_dict(settings)))
    assert refused.value.field == setting and str(tmp_path / file) in refused.value.message


def test_the_fleet_and_the_cli_see_the_drain_and_nothing_moves_in(tmp_path, keypair, engine, cleanup):
    with two_providers(tmp_path) as (source, target, engine2):
        drained = requests.put(f"{TARGET}/v1/drain", json={"draining": True}, headers=auth("ops"), timeout=10)
        assert drained.status_code == 200, drained.text
        deadline = time.monotonic() + 20
        while not [m for m in requests.get(f"{SOURCE}/v1/fleet", timeout=10).json()["members"]
                   if m["name"] == "target" and m["draining"]]:
            assert time.monotonic() < deadline, "the source never heard of the target's drain"
            time.sleep(0.3)
        # A move into it is refused by the target, before anything stops on the source.
        offer = requests.post(f"{TARGET}/v1/moves", headers=auth("alice"), timeout=30,
                              json={"public_key": keypair[1], "source": "source"})
        assert offer.status_code == 409 and "draining" in offer.json()["error"], offer.text
        # Creating there names the provider that takes instances.
        refused = requests.post(f"{TARGET}/v1/instances", json={"public_key": keypair[1]}, headers=auth("alice"), timeout=30)
        assert refused.status_code == 409 and "source (127.0.0.1:8091)" in refused.json()["error"], refused.text
        home = tmp_path / "client"
        for url in (SOURCE, TARGET):
            assert cli(home, "login", url, "--token", TOKENS["alice"]).returncode == 0
        listed = cli(home, "providers", "--json")
        assert listed.returncode == 0, listed.stderr
        assert {row["name"]: row["draining"] for row in json.loads(listed.stdout)} == {"source": False, "target": True}
        assert "target (draining)" in cli(home, "providers").stdout
        best = cli(home, "up", "--best", "--key", str(keypair[0]), "--no-check", "--json")
        assert best.returncode == 0, best.stderr
        assert json.loads(best.stdout)["name"].startswith("alice-source-")  # never the draining one


def test_a_drain_moves_every_instance_that_fits_elsewhere_and_reports_the_one_that_does_not(tmp_path, keypair,
                                                                                           other_keypair, engine, cleanup):
    """Running instances move and run there, a stopped one moves and stays stopped, each with its
    files; one the other member cannot take stays here, running, named with the reason."""
    token, hashed = operator_file(tmp_path)
    with two_providers(tmp_path, target_limits={"max_memory": "160m", "default_memory": "96m"},
                       api=hashed) as (source, target, engine2):
        def make(who: str, reservation: str) -> dict:
            key = (keypair if who == "alice" else other_keypair)[1]  # a key belongs to one client
            made = requests.post(f"{SOURCE}/v1/instances", headers=auth(who), timeout=180,
                                 json={"public_key": key, "memory_reservation": reservation})
            assert made.status_code == 201, made.text
            return made.json()

        home = tmp_path / "client"  # alice's own machine: her instance made with `dockpool up`
        for url in (SOURCE, TARGET):
            assert cli(home, "login", url, "--token", TOKENS["alice"]).returncode == 0
        made = cli(home, "up", "--provider", SOURCE, "--key", str(keypair[0]), "--memory-reservation", "128m",
                   "--no-check", "--json")
        assert made.returncode == 0, made.stderr
        running, big, stopped = json.loads(made.stdout), make("alice", "200m"), make("bob", "96m")
        wrote = ssh_run(keypair[0], running["ssh"]["port"], "echo 'my notes' > /root/notes.txt")
        assert wrote.returncode == 0, wrote.stderr
        assert requests.post(f"{SOURCE}/v1/instances/{stopped['id']}/stop", headers=auth("bob"), timeout=60).ok
        early = requests.post(f"{SOURCE}/v1/drain/moves", headers=auth("ops"), timeout=60)
        assert early.status_code == 409 and "not draining" in early.json()["error"]
        assert requests.post(f"{SOURCE}/v1/drain/moves", headers=auth("alice"), timeout=60).status_code in (401, 403)
        # The operator's way: the play, against this provider (its API on loopback), with the provider's
        # own root-only credential: the inventory lists only an ordinary client, no administrator.
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(yaml.safe_dump({"providers": {"hosts": {"source": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "provider_api_port": 8091,
            "provider_api_operator_token_file": str(token),
            "provider_api_clients": [{"name": "alice", "token": TOKENS["alice"]}]}}}}))
        played = run_playbook_file(PLAY, inventory=str(inventory), host="source")
        assert played.rc == 2, played.raw  # it fails, naming the one that stays
        result = next(t["json"] for t in played.tasks if isinstance(t.get("json"), dict) and "moved" in t["json"])
        mine = {running["name"], big["name"], stopped["name"]}  # the engine is shared: other tests' may be there
        moved = {m["name"]: m for m in result["moved"] if m["name"] in mine}
        assert set(moved) == {running["name"], stopped["name"]} and all(m["to"] == "target" for m in moved.values())
        assert moved[stopped["name"]]["state"] == "stopped" and moved[running["name"]]["cut_off_seconds"] > 0
        [stayed] = [s for s in result["stayed"] if s["name"] in mine]
        assert stayed["name"] == big["name"] and "memory" in " ".join(stayed["reasons"]), stayed
        assert big["name"] in played.tasks[-1]["msg"] and "memory" in played.tasks[-1]["msg"]
        assert engine.containers.get(big["id"]).status == "running"  # nothing removed, still running
        there = {c.labels["dockpool.name"]: c for c in engine2.containers.list(all=True, filters={"label": "dockpool.owner"})}
        landed = there[moved[running["name"]]["as"]]
        assert landed.status == "running" and there[moved[stopped["name"]]["as"]].status in ("created", "exited")  # stopped
        port = next(p["host_port"] for p in json.loads(landed.labels["dockpool.ports"]) if p["container_port"] == 22)
        notes = ssh_run(keypair[0], port, "cat /root/notes.txt")
        assert notes.stdout.strip() == "my notes", notes.stderr
        assert not [c for c in engine.containers.list(all=True) if c.id in (running["id"], stopped["id"])]
        target.stop()  # started again, the target keeps the one that landed stopped: whole, not half-made
        target.start()
        assert engine2.containers.get(there[moved[stopped["name"]]["as"]].id).status in ("created", "exited")
        # Alice follows hers: the old provider says where it went (to her, and to nobody else) ...
        old, new = running["name"], moved[running["name"]]["as"]
        gone = requests.get(f"{SOURCE}/v1/instances/{old}", headers=auth("alice"), timeout=10)
        assert gone.status_code == 404
        assert gone.json()["detail"]["moved_to"] == {"provider": "target", "address": "127.0.0.3", "name": new}
        assert requests.get(f"{SOURCE}/v1/instances/{old}", headers=auth("bob"), timeout=10).json()["detail"] is None
        # ... `dockpool ssh OLD` rewrites her SSH entries to the new place before it connects (no jump
        # host here: the connection itself fails), and `dockpool ls` shows where it is now.
        cli(home, "ssh", old, "true")
        entries = (home / "dockpool" / "ssh_config").read_text()
        assert f"Host {new}\n" in entries and f"Host {old}\n" in entries and f"Port {port}" in entries, entries
        instances = json.loads((home / "dockpool" / "config.json").read_text())["instances"]
        assert instances[new]["provider"] == TARGET and old not in instances and instances[new]["aliases"] == [old]
        listed = cli(home, "ls", "--json")
        assert listed.returncode == 0, listed.stderr
        assert {(r["name"], r["provider"]) for r in json.loads(listed.stdout)} >= {(new, TARGET), (big["name"], SOURCE)}
        # Ending the drain: --check changes nothing, the run does, a second run has nothing to do.
        ended = {"drain_state": "absent"}
        assert run_playbook_file(PLAY, check=True, extra_vars=ended, inventory=str(inventory), host="source").rc == 0
        assert requests.get(f"{SOURCE}/v1/drain", timeout=10).json()["draining"] is True
        first = run_playbook_file(PLAY, extra_vars=ended, inventory=str(inventory), host="source")
        assert first.rc == 0 and first.changed == 1, first.raw
        assert requests.get(f"{SOURCE}/v1/drain", timeout=10).json()["draining"] is False
        again = run_playbook_file(PLAY, extra_vars=ended, inventory=str(inventory), host="source")
        assert again.rc == 0 and again.changed == 0, again.raw


def test_teardown_without_a_drain_skips_the_whole_drain_play(tmp_path):
    """teardown.yml imports drain.yml; with teardown_drain=false its host ends at the first task,
    before any call (no API answers here: a call would fail the play)."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"providers": {"hosts": {"alone": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable, "provider_api_port": 9}}}}))
    played = run_playbook_file(PLAY, extra_vars={"drain_enabled": False}, inventory=str(inventory), host="alone")
    assert played.rc == 0 and played.changed == 0, played.raw
    assert not [t for t in played.tasks if "status" in t]  # no HTTP call was made


def draining_with_one_instance(keypair) -> dict:
    """Alice's instance on the source, with 400 MB to stream and a note; then the source drains."""
    made = requests.post(f"{SOURCE}/v1/instances", headers=auth("alice"), timeout=180,
                         json={"public_key": keypair[1], "memory_reservation": "128m"})
    assert made.status_code == 201, made.text
    view = made.json()
    wrote = ssh_run(keypair[0], view["ssh"]["port"], "head -c 400M /dev/urandom > /root/payload; echo 'my notes' > /root/notes.txt")
    assert wrote.returncode == 0, wrote.stderr
    assert requests.put(f"{SOURCE}/v1/drain", json={"draining": True}, headers=auth("ops"), timeout=10).ok
    return view


def test_the_drains_target_dying_mid_move_leaves_the_instance_here_running_with_its_files(tmp_path, keypair, engine,
                                                                                         cleanup):
    """A fault of part 5: the only member that takes instances is killed while an instance streams
    to it. The instance runs here again with its files, the drain reports it as staying, and the
    target, started again, holds nothing of it."""
    with two_providers(tmp_path) as (source, target, engine2):
        view = draining_with_one_instance(keypair)
        result: dict = {}
        drainer = threading.Thread(target=lambda: result.update(
            answer=requests.post(f"{SOURCE}/v1/drain/moves", headers=auth("ops"), timeout=600)))
        drainer.start()
        deadline = time.monotonic() + 120
        while engine.containers.get(view["id"]).status == "running":  # stopped: its filesystem is streaming
            assert time.monotonic() < deadline and drainer.is_alive(), result
            time.sleep(0.1)
        time.sleep(1.0)
        target.kill()
        drainer.join(timeout=300)
        answer = result["answer"]
        assert answer.status_code == 200, answer.text
        assert view["name"] not in [m["name"] for m in answer.json()["moved"]]
        assert view["name"] in [s["name"] for s in answer.json()["stayed"]]
        back = engine.containers.get(view["id"])
        assert back.status == "running"
        assert ssh_run(keypair[0], view["ssh"]["port"], "cat /root/notes.txt").stdout.strip() == "my notes"
        target.start()  # after its restart: no half-made instance or snapshot
        assert not engine2.containers.list(all=True, filters={"label": "dockpool.owner=alice"})
        assert not engine2.images.list(filters={"label": "dockpool.move"})


def test_the_source_killed_mid_drain_runs_each_instance_once_and_the_drain_resumes(tmp_path, keypair, engine, cleanup):
    """A fault of part 5, at its two moments. Killed while the filesystem streams: started again,
    the source learns from the target that nothing landed there and runs the instance again, with
    its files. Killed once the target has created it: started again, the source learns that it
    runs there, removes its own copy and forwards its owner. Never two copies; nothing lost."""
    with two_providers(tmp_path) as (source, target, engine2):
        view = draining_with_one_instance(keypair)

        def drain_in_background() -> threading.Thread:
            def run() -> None:
                try:
                    requests.post(f"{SOURCE}/v1/drain/moves", headers=auth("ops"), timeout=600)
                except requests.ConnectionError:
                    pass  # the source is killed under it
            thread = threading.Thread(target=run)
            thread.start()
            return thread

        def landed() -> list:
            return engine2.containers.list(all=True, filters={"label": "dockpool.owner=alice"})

        # 1. Killed mid-stream.
        drainer = drain_in_background()
        deadline = time.monotonic() + 120
        while engine.containers.get(view["id"]).status == "running":  # stopped: its filesystem is streaming
            assert time.monotonic() < deadline and drainer.is_alive()
            time.sleep(0.1)
        time.sleep(1.0)
        source.kill()
        drainer.join(timeout=60)
        assert engine.containers.get(view["id"]).status == "exited"  # stopped for the move, and nobody started it
        journal = json.loads((source.directory / "moves.json").read_text())["out"]
        assert [m["name"] for m in journal.values()] == [view["name"]]  # the move in doubt, on disk
        source.start()
        deadline = time.monotonic() + 60
        while engine.containers.get(view["id"]).status != "running":  # the target said it holds nothing
            assert time.monotonic() < deadline, (source.directory / "api.log").read_text()[-3000:]
            time.sleep(0.3)
        assert not landed()
        wait_for_ssh("127.0.0.1", view["ssh"]["port"])
        assert ssh_run(keypair[0], view["ssh"]["port"], "cat /root/notes.txt").stdout.strip() == "my notes"
        assert not json.loads((source.directory / "moves.json").read_text())["out"]

        # 2. The drain again (the operator runs the play again), killed once the target created it.
        drainer = drain_in_background()
        deadline = time.monotonic() + 180
        while not landed():
            assert time.monotonic() < deadline and drainer.is_alive()
            time.sleep(0.05)
        source.kill()
        drainer.join(timeout=60)
        source.start()
        deadline = time.monotonic() + 60
        while [c for c in engine.containers.list(all=True) if c.id == view["id"]]:  # the target said it runs there
            assert time.monotonic() < deadline, (source.directory / "api.log").read_text()[-3000:]
            time.sleep(0.3)
        [there] = landed()
        there.reload()
        assert there.status == "running"
        port = next(p["host_port"] for p in json.loads(there.labels["dockpool.ports"]) if p["container_port"] == 22)
        assert ssh_run(keypair[0], port, "cat /root/notes.txt").stdout.strip() == "my notes"
        gone = requests.get(f"{SOURCE}/v1/instances/{view['name']}", headers=auth("alice"), timeout=10)
        assert gone.status_code == 404 and gone.json()["detail"]["moved_to"]["name"] == there.labels["dockpool.name"]
        assert not json.loads((source.directory / "moves.json").read_text())["out"]
        target.stop()  # the target started again keeps the instance it took in, though it was never told "done"
        target.start()
        assert [c.id for c in landed()] == [there.id]


def test_a_target_started_again_removes_what_an_unfinished_move_made_and_keeps_a_finished_one(tmp_path, keypair,
                                                                                              engine, cleanup):
    """The target's side of a kill: an instance a move made whose journal entry was never completed
    was never announced to its source (which still holds the instance, and will hear 404): the
    start removes it, with its snapshot. One whose entry is complete stays, though never started."""
    settings = make_config(tmp_path)
    manager = InstanceManager(engine, load_policy(settings["policy_file"]), read_topology())
    base = engine.containers.create("dockpool/debian-sshd", ["true"], labels={"dockpool.test": "journal"})
    made = {}
    try:
        for number, export in enumerate(("00000000000000aa", "00000000000000bb")):
            snapshot = f"dockpool-move/alice-testprov-{number}:{export}"
            base.commit(*snapshot.split(":"), conf={"Labels": {"dockpool.move": export}})
            spec = manager.spec({"name": f"alice-testprov-{number}", "owner": "alice", "public_key": keypair[1]})
            made[export] = manager.create(spec, start=False, origin="api", image_ref=snapshot)["id"]
    finally:
        base.remove()
    (tmp_path / "moves.json").write_text(json.dumps({"out": {}, "in": {
        "00000000000000aa": {"id": "", "source": "source", "name": ""},
        "00000000000000bb": {"id": made["00000000000000bb"], "source": "source", "name": "alice-testprov-1"}}}))
    try:
        with api_process(tmp_path, settings):
            pass
        left = {c.id for c in engine.containers.list(all=True, filters={"label": "dockpool.owner=alice"})}
        assert made["00000000000000aa"] not in left and made["00000000000000bb"] in left
        assert not engine.images.list(name="dockpool-move/alice-testprov-0")  # the start's sweep
        assert list(json.loads((tmp_path / "moves.json").read_text())["in"]) == ["00000000000000bb"]
    finally:
        for export, container in made.items():
            manager.remove(container)
            snapshots.remove_snapshot(engine, f"dockpool-move/alice-testprov-{list(made).index(export)}:{export}")

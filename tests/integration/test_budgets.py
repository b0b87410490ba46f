"""Packages and budgets (issue 25, part 2): the operator's packages in the settings, checked as
the role's validate command checks them; budgets read from a real ledger; a client over one on
a real API process gets no new instance (402), its running instance stopped and kept."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from contextlib import ExitStack

import pytest
import requests

from dockpool.client_requests import move_request
from dockpool.errors import InvalidInput
from dockpool.ledger import Ledger, Reading
from dockpool.metering import meter
from dockpool.usage import run_pass
from dockpool_api.auth import hash_token
from dockpool_api.budgets import Budgets, month_end
from dockpool_api.config import config_from_dict
from dockpool_api.fleet.counters import CounterSigner
from dockpool_api.fleet.membership import Signer
from dockpool_api.fleet.tls import FleetTLS
from dockpool_api.fleet.transport import Call, Endpoint, HttpTransport, ask
from dockpool_api.usage_report import UsageReport
from dockpool_dev import devca
from support.api_config import TOKENS, make_config
from support.api_process import api_process, free_port
from support.cli import cli
from support.two_providers import FLEET_PORT, SOURCE, SPARE, TARGET, three_providers, two_providers
from support.waiting import until

GIB = 1024**3
CLIENTS = [{"name": n, "token_sha256": hash_token(t), "admin": n == "ops", "package": "tiny" if n == "alice" else ""}
           for n, t in TOKENS.items()]


def test_an_unknown_package_fails_the_roles_validate_naming_it(tmp_path):
    settings = make_config(tmp_path, packages={"small": {"budgets": {"cpu_hours": 10}}},
                           clients=[{"name": "alice", "token_sha256": hash_token("x" * 20), "package": "large"}])
    (tmp_path / "api.json").write_text(json.dumps(settings))
    # What the role's validate: runs (PREFIX/bin/dockpool-check-settings, the launcher of its main()).
    launcher = "import sys; from dockpool_api.check_settings import main; sys.exit(main(sys.argv[1:]))"
    checked = subprocess.run([sys.executable, "-c", launcher, "api", str(tmp_path / "api.json")], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode != 0
    assert "clients[0].package" in checked.stderr and "'large'" in checked.stderr and "small" in checked.stderr


@pytest.mark.parametrize("packages, field", [
    ({"p": {"budgets": {"cpu_hours": -1}}}, "packages.p.budgets.cpu_hours"),
    ({"p": {"budgets": {"gpu_years": 1}}}, "packages.p.budgets"),
    ({"p": {"limits": {"max_memory": "lots"}}}, "packages.p.limits"),
    ({"p": {"price": 3}}, "packages.p"),
])
def test_a_bad_package_is_refused_naming_the_field(tmp_path, packages, field):
    with pytest.raises(InvalidInput) as refused:
        config_from_dict(make_config(tmp_path, packages=packages))
    assert refused.value.field.startswith(field), refused.value.field


def test_a_package_gives_its_client_its_limits(tmp_path):
    config = config_from_dict(make_config(tmp_path, packages={"tiny": {"limits": {"max_memory": "128m"}}}, clients=CLIENTS))
    alice = next(c for c in config.clients if c.name == "alice")
    assert alice.package == "tiny" and dict(alice.limits)["max_memory"] == 128 * 1024**2


def test_budgets_warn_at_four_fifths_and_are_spent_at_the_limit_reading_a_real_ledger(tmp_path):
    now = [1_796_083_200.0 + 3600]  # an hour into December 2026, UTC
    ledger = Ledger(str(tmp_path / "usage.db"), lambda: now[0])
    budgets = Budgets({"tiny": {"limits": (), "budgets": {"cpu_hours": 1.0, "egress_gib": 2.0}}},
                      UsageReport(str(tmp_path / "usage.db"), "p"), lambda: now[0])
    alice = config_from_dict(make_config(tmp_path, packages={"tiny": {"budgets": {"cpu_hours": 1.0}}},
                                         clients=CLIENTS)).clients[0]

    def pass_at(cpu_s: float, tx: int) -> None:
        now[0] += 30
        ledger.record([Reading("id-1", "alice", "alice-p-1", "g1", GIB, cpu_ns=int(cpu_s * 1e9), tx_bytes=tx)])

    pass_at(0, 0)
    pass_at(2000, GIB)  # 0.56 CPU hours, 1 of 2 GiB out
    assert [b["warning"] or b["exhausted"] for b in budgets.status(alice)] == [False, False]
    pass_at(3000, GIB)  # 0.83 CPU hours: past four fifths
    cpu = budgets.status(alice)[0]
    assert cpu["budget"] == "cpu_hours" and cpu["warning"] and not cpu["exhausted"] and cpu["percent"] == 83.3
    budgets.check(alice, "a new instance")  # a warning does not refuse
    pass_at(3700, GIB)  # over the hour
    with pytest.raises(Exception) as refused:
        budgets.check(alice, "a new instance")
    assert refused.value.http_status == 402 and "cpu_hours" in refused.value.message
    assert refused.value.detail["resets"] == "2027-01-01T00:00:00+00:00"
    assert month_end(now[0]) == 1_798_761_600.0
    now[0] = 1_798_761_600.0 + 60  # January: the month's budgets are whole again
    assert not budgets.exhausted(alice)


def test_a_gpu_hours_budget_is_spent_by_gpu_time_the_ledger_integrated(tmp_path):
    now = [1_796_083_200.0 + 3600]
    ledger = Ledger(str(tmp_path / "usage.db"), lambda: now[0])
    budgets = Budgets({"gpu": {"limits": (), "budgets": {"gpu_hours": 0.5}}},
                      UsageReport(str(tmp_path / "usage.db"), "p"), lambda: now[0])
    alice = config_from_dict(make_config(tmp_path, packages={"gpu": {"budgets": {"gpu_hours": 0.5}}},
                                         clients=[{**CLIENTS[0], "package": "gpu"}])).clients[0]
    def two_gpus_busy() -> None:
        ledger.record([Reading("id-1", "alice", "alice-p-1", "g1", GIB, gpu_busy=2.0)])

    for step in range(12):  # two GPUs busy for a minute at a time: 2 GPU-minutes per pass
        two_gpus_busy()
        now[0] += 60
        if step == 10:
            [gpu_budget] = budgets.status(alice)
            assert gpu_budget["budget"] == "gpu_hours" and gpu_budget["used"] == pytest.approx(20 / 60)
            assert not gpu_budget["warning"] and not gpu_budget["exhausted"]
    two_gpus_busy()  # 24 GPU-minutes
    assert budgets.status(alice)[0]["warning"]
    now[0] += 180
    two_gpus_busy()  # 30: spent
    with pytest.raises(Exception) as refused:
        budgets.check(alice, "a new instance")
    assert refused.value.http_status == 402 and "gpu_hours" in refused.value.message


def test_the_status_page_and_the_cli_show_a_warning_and_a_spent_budget_in_their_colours(tmp_path):
    """The real service and CLI over a ledger holding what the watchdog would have written: alice
    spent her CPU budget, bob used 90% of his."""
    clients = [{**c, "package": {"alice": "tiny", "bob": "roomy"}.get(c["name"], "")} for c in CLIENTS]
    settings = make_config(tmp_path, clients=clients, packages={"tiny": {"budgets": {"cpu_hours": 1.0}},
                                                                "roomy": {"budgets": {"cpu_hours": 2.0}}})
    ledger = Ledger(settings["ledger_file"])
    for share in (0.0, 1.0):  # the first reading, then one pass later with the CPU hours used
        ledger.record([Reading(f"id-{who}", who, f"{who}-p-1", "g1", GIB, cpu_ns=int(share * used * 3600e9))
                       for who, used in (("alice", 1.2), ("bob", 1.8))])
    with api_process(tmp_path, settings) as url:
        for who, css, words in (("alice", "budget bad", "spent: no new instance until"), ("bob", "budget state-stopped", "resets")):
            page = requests.get(f"{url}/", headers={"Authorization": f"Bearer {TOKENS[who]}"}, timeout=30).text
            [line] = re.findall(r'<p class="budget[^"]*">[^<]*</p>', page)
            assert f'class="{css}"' in line and "cpu_hours" in line and words in line, line
            home = tmp_path / who
            assert cli(home, "login", url, "--token", TOKENS[who]).returncode == 0
            shown = cli(home, "usage", env={"FORCE_COLOR": "1", "TERM": "xterm-256color"})
            colour = {"alice": "\x1b[31m", "bob": "\x1b[33m"}[who]  # red: spent; yellow: a warning
            [budget_line] = [line for line in shown.stdout.splitlines() if "cpu_hours" in line]
            assert colour in budget_line and ("spent" in budget_line) == (who == "alice"), repr(budget_line)
        ops = requests.get(f"{url}/", headers={"Authorization": f"Bearer {TOKENS['ops']}"}, timeout=30).text
        assert 'class="budget' not in ops  # no package, no budget line


@pytest.mark.engine
def test_a_client_over_budget_gets_no_new_instance_and_her_running_one_is_stopped_not_removed(
        tmp_path, keypair, other_keypair, engine, cleanup):
    settings = make_config(tmp_path, clients=CLIENTS, packages={"tiny": {"budgets": {"cpu_hours": 0.0003}}},
                           gossip_interval=1.0, peer_expiry=5.0)  # 1.08 CPU seconds a month; a pass every second
    alice = {"Authorization": f"Bearer {TOKENS['alice']}"}
    with api_process(tmp_path, settings) as url:
        made = requests.post(f"{url}/v1/instances", headers=alice, timeout=180,
                             json={"public_key": keypair[1], "memory_reservation": "64m"})
        assert made.status_code == 201, made.text
        view = made.json()
        ledger = Ledger(settings["ledger_file"])
        meter(ledger, list(run_pass(engine, settings["usage_file"])["instances"].values()))
        [cpu] = requests.get(f"{url}/v1/usage", headers=alice, timeout=10).json()["budgets"]
        assert cpu["budget"] == "cpu_hours" and not cpu["exhausted"]
        burn = engine.containers.get(view["id"]).exec_run(["timeout", "6", "sh", "-c", "while :; do :; done"])
        assert burn.exit_code == 124
        meter(ledger, list(run_pass(engine, settings["usage_file"])["instances"].values()))

        report = requests.get(f"{url}/v1/usage", headers=alice, timeout=10).json()
        assert report["package"] == "tiny" and report["budgets"][0]["exhausted"], json.dumps(report)
        refused = requests.post(f"{url}/v1/instances", headers=alice, timeout=60,
                                json={"public_key": keypair[1], "memory_reservation": "64m"})
        assert refused.status_code == 402 and refused.json()["field"] == "budget", refused.text
        assert "cpu_hours" in refused.json()["error"] and "resets at" in refused.json()["error"]
        until(lambda: not engine.api.inspect_container(view["id"])["State"]["Running"], 30,
              "the instance of a client over budget kept running")
        assert engine.containers.get(view["id"]).labels["dockpool.owner"] == "alice"  # stopped, kept with its disk
        again = requests.post(f"{url}/v1/instances/{view['name']}/start", headers=alice, timeout=60)
        assert again.status_code == 402, again.text
        bob = requests.post(f"{url}/v1/instances", headers={"Authorization": f"Bearer {TOKENS['bob']}"}, timeout=180,
                            json={"public_key": other_keypair[1], "memory_reservation": "64m"})
        assert bob.status_code == 201, bob.text  # no package, no budget
        home = tmp_path / "client"
        assert cli(home, "login", url, "--token", TOKENS["alice"]).returncode == 0
        shown = cli(home, "usage")
        assert shown.returncode == 0 and "cpu_hours" in shown.stdout and "spent" in shown.stdout, shown.stdout


def test_dockpool_usage_adds_up_every_provider_logged_in_to_and_names_one_that_does_not_answer(tmp_path):
    """Two real services, each over its own ledger (as its watchdog wrote it), and a third login
    whose provider is gone: the CLI shows both providers' instances, their total, and a warning."""
    with ExitStack() as stack:
        urls = []
        for n, cpu_hours in ((1, 0.5), (2, 0.25)):
            folder = tmp_path / f"p{n}"
            folder.mkdir()
            settings = make_config(folder, provider_name=f"prov{n}", clients=CLIENTS,
                                   packages={"tiny": {"budgets": {"cpu_hours": 1.0}}})
            ledger = Ledger(settings["ledger_file"])
            for cpu_s in (0.0, cpu_hours * 3600):
                ledger.record([Reading(f"id-{n}", "alice", f"alice-prov{n}-1", "g1", GIB, cpu_ns=int(cpu_s * 1e9))])
            urls.append(stack.enter_context(api_process(folder, settings)))
        home = tmp_path / "client"
        gone = f"http://127.0.0.1:{free_port()}"
        for url in urls:
            assert cli(home, "login", url, "--token", TOKENS["alice"]).returncode == 0
        settings_file = home / "dockpool" / "config.json"
        saved = json.loads(settings_file.read_text())
        saved["providers"][gone] = saved["providers"][urls[0]]  # logged in once; the provider has gone since
        settings_file.write_text(json.dumps(saved))
        shown = cli(home, "usage", "--json")
        assert shown.returncode == 0, shown.stderr
        answer = json.loads(shown.stdout)
        assert sorted(r["url"] for r in answer["providers"]) == sorted(urls)
        assert answer["total"]["cpu_seconds"] == pytest.approx(0.75 * 3600)
        assert gone.split("//")[1] in shown.stderr  # the one that did not answer is named
        table = cli(home, "usage")
        assert "alice-prov1-1" in table.stdout and "alice-prov2-1" in table.stdout and "0.750" in table.stdout
        assert table.stdout.count("cpu_hours") == 2  # each provider's budget line


# ---- one budget across the fleet (issue 35) -------------------------------------------------------

FLEET_API = {"clients": CLIENTS, "packages": {"tiny": {"budgets": {"cpu_hours": 1.0}, "prices": {"cpu_hours": 2.0}}}}
ALICE = {"Authorization": f"Bearer {TOKENS['alice']}"}
_passes = iter(range(1_000_000))


def spend_on(provider, cpu_hours: float) -> None:
    """What a watchdog pass on ``provider`` writes when alice's instance there used ``cpu_hours``
    (its ledger on disk: the API reads it as it reads the watchdog's)."""
    ledger = Ledger(provider.settings["ledger_file"])
    instance = f"id-{next(_passes)}"
    for cpu_s in (0.0, cpu_hours * 3600):
        ledger.record([Reading(instance, "alice", "alice-x-1", "g1", GIB, cpu_ns=int(cpu_s * 1e9))])
    ledger.close()


def cpu_budget(url: str) -> dict:
    answer = requests.get(f"{url}/v1/usage", headers=ALICE, timeout=10)
    assert answer.status_code == 200, answer.text
    return {b["budget"]: b for b in answer.json()["budgets"]}["cpu_hours"]


def new_instance(url: str, public_key: str, **extra) -> dict:
    made = requests.post(f"{url}/v1/instances", headers=ALICE, timeout=180,
                         json={"public_key": public_key, "memory_reservation": "64m", **extra})
    assert made.status_code == 201, made.text
    return made.json()


def refused_for_budget(answer: requests.Response, doing: str) -> None:
    assert answer.status_code == 402, answer.text
    body = answer.json()
    assert body["field"] == "budget" and "cpu_hours" in body["error"] and doing in body["error"], body


def fleet_context(tmp_path, name: str):
    """A member's mutual TLS as ``name`` (a certificate of the fleet's CA, as the play issues one)."""
    ca = (tmp_path / "fleet-ca" / "ca.crt", tmp_path / "fleet-ca" / "ca.key")
    return FleetTLS(*map(str, devca.issue(ca, tmp_path / name, name)), str(ca[0])).client_context()


def ask_spend(context, address: str, name: str, body: dict) -> tuple[int, dict]:
    """``POST /v1/fleet/spend`` on the member ``name``'s fleet listener, as a member calls it."""
    status, text = ask(HttpTransport(context), Endpoint(address, FLEET_PORT, name),
                       Call("POST", "/v1/fleet/spend", json.dumps(body).encode(), deadline=10, most=4 * 1024**2))
    return status, json.loads(text)


@pytest.mark.engine
def test_spend_on_one_member_is_seen_on_a_third_and_its_counters_can_be_neither_forged_replayed_nor_doubled(
        tmp_path, engine, cleanup):
    """Three real providers (their gossip every 0.5 s): alice's CPU time counted on the source and the
    target reaches the spare, whose budget check sums it; a set forged under another key and an
    older one replayed are refused through the real route; the source restarted after a charge made
    while it was down is counted once, with that charge."""
    with three_providers(tmp_path, api=FLEET_API) as (source, target, spare, _engine2):
        began = time.monotonic()
        spend_on(source, 0.6)
        until(lambda: cpu_budget(SPARE)["used"] == pytest.approx(0.6), 30, "the spare never heard of the source's spend")
        print(f"\nspend seen on the third member after {(time.monotonic() - began) / 0.5:.1f} rounds of 0.5 s")
        assert cpu_budget(SPARE)["used_here"] == 0 and not cpu_budget(SPARE)["exhausted"]
        spend_on(target, 0.5)  # 1.1 of 1 CPU hour across the fleet, none of it on the spare
        until(lambda: cpu_budget(SPARE)["exhausted"], 30, "the spare never summed the fleet's spend")
        charges = requests.get(f"{SPARE}/v1/usage", headers=ALICE, timeout=10).json()["charges"]
        assert charges["here"] == 0 and charges["elsewhere"] == pytest.approx(2.2), charges  # 1.1 CPU hours at 2 credits
        refused_for_budget(requests.post(f"{SPARE}/v1/instances", headers=ALICE, timeout=60,
                                         json={"public_key": "ssh-ed25519 AAAA", "memory_reservation": "64m"}),
                           "a new instance")

        auditor = fleet_context(tmp_path, "auditor")
        status, held = ask_spend(auditor, "127.0.0.4", "spare", {"digest": {}, "sets": []})
        assert status == 200 and {s["provider"] for s in held["sets"]} == {"source", "target", "spare"}, held
        old = next(s for s in held["sets"] if s["provider"] == "source")
        spend_on(source, 0.2)  # the source counts more: a newer set replaces the one held
        until(lambda: ask_spend(auditor, "127.0.0.4", "spare", {"digest": {}, "sets": []})[1]["digest"]["source"]
              > old["version"], 30, "the spare never took the source's newer set")
        status, replayed = ask_spend(auditor, "127.0.0.4", "spare", {"digest": {}, "sets": [old]})
        assert status == 400 and replayed["field"] == "sets[0].version" and "not newer" in replayed["error"], replayed
        mallory = tmp_path / "mallory"
        mallory.mkdir()
        Signer(str(mallory / "membership.key"))
        lowered = {"2026-12": {"alice": {"cpu_seconds": 0.0}}}  # any month: the signature is what is refused
        forged = CounterSigner(str(mallory / "membership.key")).sign("source", old["version"] + 10**9, lowered)
        status, answer = ask_spend(auditor, "127.0.0.4", "spare", {"digest": {}, "sets": [forged]})
        assert status == 400 and answer["field"] == "sets[0].signature" and "source" in answer["error"], answer
        until(lambda: cpu_budget(SPARE)["used"] == pytest.approx(1.3), 30, "the spare's sum moved")

        source.stop()
        spend_on(source, 0.1)  # the watchdog's pass while the API is down: on its ledger
        before = ask_spend(auditor, "127.0.0.4", "spare", {"digest": {}, "sets": []})[1]["digest"]["source"]
        source.start()
        until(lambda: cpu_budget(SPARE)["used"] == pytest.approx(1.4), 30, "the charge made while it was down was lost")
        after = ask_spend(auditor, "127.0.0.4", "spare", {"digest": {}, "sets": []})[1]["digest"]["source"]
        assert after > before  # signed anew, from its ledger, above every version it signed
        time.sleep(2.0)  # four rounds more: taking its sets again counts nothing twice
        assert cpu_budget(SPARE)["used"] == pytest.approx(1.4) and cpu_budget(SOURCE)["used"] == pytest.approx(1.4)


@pytest.mark.engine
def test_a_spent_budget_refuses_a_move_in_and_stops_her_instances_on_every_member(tmp_path, keypair, engine, cleanup):
    """Budget evasion by move (issue 35): spent on the source, alice's instance there stopped, she asks
    the target to take it. Refused at the offer, and a grant the target gave before is refused when
    the instance lands; her instance on the target, where she spent nothing, is stopped too."""
    with two_providers(tmp_path, api=FLEET_API) as (source, target, engine2):
        here = new_instance(SOURCE, keypair[1])
        there = new_instance(TARGET, keypair[1])
        body = {**move_request(here, keypair[1]), "source": "source"}
        early = requests.post(f"{TARGET}/v1/moves", headers=ALICE, json=body, timeout=60)
        assert early.status_code == 201, early.text  # nothing spent yet
        spend_on(source, 1.2)
        until(lambda: cpu_budget(TARGET)["exhausted"], 30, "the target never heard of the source's spend")
        until(lambda: not engine2.api.inspect_container(there["id"])["State"]["Running"], 30,
              "her instance on the target kept running")
        until(lambda: not engine.api.inspect_container(here["id"])["State"]["Running"], 30,
              "her instance on the source kept running")
        assert engine2.containers.get(there["id"]).labels["dockpool.owner"] == "alice"  # stopped, never removed
        refused_for_budget(requests.post(f"{TARGET}/v1/moves", headers=ALICE, json=body, timeout=60), "moving")
        late = requests.post(f"{SOURCE}/v1/instances/{here['name']}/move", headers=ALICE, timeout=300,
                             json={"target": "target", "move": early.json()["id"], "grant": early.json()["grant"]})
        assert late.status_code >= 400 and "402" in late.text and "cpu_hours" in late.text, late.text
        assert engine.containers.get(here["id"]).labels["dockpool.owner"] == "alice"  # still on the source
        assert [c.id for c in engine2.containers.list(all=True, filters={"label": "dockpool.owner=alice"})] == [there["id"]]
        refused_for_budget(requests.post(f"{TARGET}/v1/instances/{there['name']}/start", headers=ALICE, timeout=60),
                           "starting")


@pytest.mark.engine
def test_a_spent_budget_refuses_a_restore_and_an_offline_providers_spend_stays_counted(
        tmp_path, keypair, engine, cleanup):
    """Budget evasion by restore (issue 35): alice's replicated instance's provider spent her budget,
    then died. The holder still counts what it counted (the provider is offline, its signed counters
    stay) and refuses to restore her instance, naming the budget."""
    with two_providers(tmp_path, api=FLEET_API) as (source, target, engine2):
        view = new_instance(SOURCE, keypair[1], replica=True)
        replicated = requests.post(f"{SOURCE}/v1/instances/{view['name']}/replicate", headers=ALICE, timeout=600)
        assert replicated.status_code == 200, replicated.text
        spend_on(source, 1.2)
        until(lambda: cpu_budget(TARGET)["exhausted"], 30, "the holder never heard of the source's spend")
        until(lambda: not engine.api.inspect_container(view["id"])["State"]["Running"], 30,
              "her instance kept running on the provider where she spent her budget")
        source.kill()  # then a sudden stop of the provider
        until(lambda: not requests.get(f"{TARGET}/v1/fleet", timeout=5).json()["members"], 30,
              "the holder never expired the source")
        assert cpu_budget(TARGET)["used"] >= 1.2  # offline, its spend stays counted
        refused_for_budget(requests.post(f"{TARGET}/v1/replicas/source/{view['name']}/restore", headers=ALICE,
                                         timeout=120), "restoring")
        assert not engine2.containers.list(all=True, filters={"label": "dockpool.owner=alice"})

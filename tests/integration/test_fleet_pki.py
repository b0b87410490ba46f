"""The fleet's identities as the play makes them: the provider_api role's own fleet_pki.yml and
settings template, run by real ansible-playbook for a play of three local hosts (their files
in the test's folder, the controller's CA in the test's controller cache), then three real API
processes started from what it made, forming one fleet over mutual TLS. Then what an operator
does later: a second run changes nothing, a certificate near its end is signed again, and a CA
rotation re-signs every certificate while both CAs are trusted."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509

from dockpool_dev import localfleet
from support.ansible_run import run_playbook_file
from support.api_config import make_config, update_policy
from support.waiting import until

pytestmark = pytest.mark.engine
ROOT = Path(__file__).resolve().parents[2]
HOSTS = {f"prov{i}": localfleet.address(100 + i) for i in range(3)}


def play(tmp_path: Path, extra: dict | None = None, inventory_name: str = "inventory", hosts: dict | None = None,
         succeed: bool = True):
    """Run the role's fleet_pki.yml and settings template for the hosts of one inventory (the
    three above by default); returns the result (which must succeed, unless told)."""
    hosts = hosts or HOSTS
    inventory = tmp_path / f"{inventory_name}.yml"
    inventory.write_text(json.dumps({"providers": {"hosts": {
        h: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "test_address": a}
        for h, a in hosts.items()}}}))
    playbook = tmp_path / "pki.yml"
    playbook.write_text(json.dumps([{
        "name": "The fleet's identities and settings, as provision.yml makes them", "hosts": "providers",
        "gather_facts": False,
        "handlers": [{"name": "Restart dockpool-api", "ansible.builtin.debug": {"msg": "restart"}}],
        "tasks": [
            *[{"name": f"Load {role}'s defaults", "ansible.builtin.include_vars": str(ROOT / "roles" / role / "defaults" / "main.yml")}
              for role in ("docker_engine", "dockpool_core", "provider_api")],
            {"name": "Load the core role's own variables (its settings folder)",
             "ansible.builtin.include_vars": str(ROOT / "roles" / "dockpool_core" / "vars" / "main.yml")},
            {"name": "This host's address and files, and the controller's cache, in the test's folder",
             "ansible.builtin.set_fact": {
                 "dockpool_core_public_address": "{{ test_address }}", "provider_api_listen": "{{ test_address }}",
                 "provider_api_provider_name": "{{ inventory_hostname }}",
                 "docker_engine_controller_cache": str(tmp_path / "controller-cache"),
                 "provider_api__fleet_dir": str(tmp_path) + "/{{ inventory_hostname }}/fleet",
                 "dockpool_core_owner": "root", **(extra or {})}},
            {"name": "Make the host's folder", "ansible.builtin.file": {"path": str(tmp_path) + "/{{ inventory_hostname }}",
                                                                       "state": "directory", "mode": "0755"}},
            {"name": "The role's fleet identity", "ansible.builtin.include_tasks": str(ROOT / "roles/provider_api/tasks/fleet_pki.yml")},
            {"name": "Render", "ansible.builtin.template": {"src": str(ROOT / "roles/provider_api/templates/api.json.j2"),
                                                           "dest": str(tmp_path) + "/{{ inventory_hostname }}/api.json",
                                                           "mode": "0600"}},
        ]}]))
    result = run_playbook_file(playbook, inventory=str(inventory), host=next(iter(hosts)))
    assert (result.rc == 0) == succeed, result.raw[-3000:]
    return result


def ca_dir(tmp_path: Path, inventory_name: str = "inventory") -> Path:
    """Where the controller keeps a fleet's CA: named by the inventory (its folder and file name)."""
    return tmp_path / "controller-cache" / "fleets" / f"{tmp_path.name}-{inventory_name}"


def certificate(tmp_path: Path, host: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((tmp_path / host / "fleet" / "fleet.crt").read_bytes())


def start_providers(tmp_path: Path, hosts: dict) -> list:
    """Real API processes from the settings the play rendered (quick rounds, loopback allowed)."""
    procs = []
    for host, address in hosts.items():
        settings = json.loads((tmp_path / host / "api.json").read_text())
        settings.update(make_config(tmp_path / host), gossip_interval=0.5, peer_networks=["127.0.0.0/8"],
                        peer_deny_networks=[], provider_name=host, port=8088)
        update_policy(settings["policy_file"], public_address=address)
        (tmp_path / host / "api.json").write_text(json.dumps(settings))
        log = open(tmp_path / host / "api.log", "wb")  # closed when the process ends
        procs.append(subprocess.Popen([sys.executable, "-m", "dockpool_api", "--config", str(tmp_path / host / "api.json")],
                                      stdout=log, stderr=subprocess.STDOUT))
    for address in hosts.values():
        localfleet.wait_up(f"http://{address}:8088")
    return procs


def stop(procs: list) -> None:
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


def test_two_inventories_from_one_controller_are_two_fleets_that_refuse_each_others_certificates(tmp_path):
    """Staging and production provisioned from one laptop: each inventory gets a CA of its own, and
    a certificate of one fleet is refused by the other's fleet listener. Joining stays explicit."""
    staging = {"stage0": localfleet.address(110)}
    legacy = tmp_path / "controller-cache" / "fleet-ca"  # the one CA earlier versions shared: left, not adopted
    legacy.mkdir(parents=True)
    (legacy / "ca.crt").write_text("the shared CA of an earlier version\n")
    production = play(tmp_path, inventory_name="production")
    assert [t for t in production.tasks if str(legacy) in str(t.get("msg", ""))], "no word about the old shared CA"
    play(tmp_path, inventory_name="staging", hosts=staging)
    procs = start_providers(tmp_path, {"prov0": HOSTS["prov0"]})
    try:
        identity = f"https://{HOSTS['prov0']}:8444/v1/fleet/identity"

        def ask(host: str) -> requests.Response:
            fleet = tmp_path / host / "fleet"
            return requests.get(identity, cert=(str(fleet / "fleet.crt"), str(fleet / "fleet.key")), verify=False,
                                timeout=10)

        assert ask("prov1").status_code == 200  # a member of its own fleet
        with pytest.raises(requests.exceptions.ConnectionError):  # SSLError included: the handshake is refused
            ask("stage0")
    finally:
        stop(procs)
    cas = {name: x509.load_pem_x509_certificate((ca_dir(tmp_path, name) / "ca.crt").read_bytes())
           for name in ("production", "staging")}
    assert _raw(cas["production"]) != _raw(cas["staging"])
    assert "staging" in cas["staging"].subject.rfc4514_string()  # the CA says which fleet it is
    assert certificate(tmp_path, "stage0").issuer == cas["staging"].subject
    trusted = x509.load_pem_x509_certificates((tmp_path / "prov0" / "fleet" / "cas.pem").read_bytes())
    assert [_raw(c) for c in trusted] == [_raw(cas["production"])]


def test_a_provider_keeps_the_fleet_it_was_first_provisioned_in_when_its_inventory_moves(tmp_path):
    """The same hosts reached through another inventory path get another default fleet name: the
    run stops before any CA is made, naming the recorded fleet and the variable to set; with the
    name set the run changes nothing, and a name chosen on purpose moves them."""
    play(tmp_path)
    first = f"{tmp_path.name}-inventory"
    assert (tmp_path / "prov0" / "fleet" / "fleet-name").read_text() == f"{first}\n"
    serials = {h: certificate(tmp_path, h).serial_number for h in HOSTS}
    moved = play(tmp_path, inventory_name="moved", succeed=False)
    refusal = " ".join(str(t.get("msg", "")) for t in moved.tasks if t.get("failed"))
    assert f"fleet {first}" in refusal and f"provider_api_fleet_name: {first}" in refusal, refusal
    assert not ca_dir(tmp_path, "moved").exists()  # refused before another CA was made
    named = play(tmp_path, {"provider_api_fleet_name": first}, inventory_name="moved")
    assert named.changed == 0, [t for t in named.tasks if t.get("changed")]
    assert {h: certificate(tmp_path, h).serial_number for h in HOSTS} == serials
    play(tmp_path, {"provider_api_fleet_name": "staging"}, inventory_name="moved")  # on purpose: another fleet
    assert (tmp_path / "prov0" / "fleet" / "fleet-name").read_text() == "staging\n"
    assert certificate(tmp_path, "prov0").issuer.rfc4514_string().endswith("(staging)")


def test_the_sandbox_is_a_fleet_of_its_own():
    shown = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-inventory"), "-i", str(ROOT / "inventory" / "sandbox.yml"),
                            "--host", "dockpool-sandbox"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout).get("provider_api_fleet_name") == "sandbox"




def test_a_fleet_provisioned_together_holds_certificates_from_one_ca_and_forms_over_mutual_tls(tmp_path):
    play(tmp_path)
    ca = x509.load_pem_x509_certificate((ca_dir(tmp_path) / "ca.crt").read_bytes())
    assert oct((ca_dir(tmp_path) / "ca.key").stat().st_mode & 0o777) == "0o600"
    for host, address in HOSTS.items():
        cert = certificate(tmp_path, host)
        assert cert.issuer == ca.subject and cert.subject.rfc4514_string() == f"CN={host}"
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [address]
        assert oct((tmp_path / host / "fleet" / "fleet.key").stat().st_mode & 0o777) == "0o600"
        settings = json.loads((tmp_path / host / "api.json").read_text())
        assert sorted(settings["bootstrap_peers"]) == sorted(f"https://{a}:8444" for h, a in HOSTS.items() if h != host)
        assert settings["fleet_port"] == 8444 and "fleet_token" not in settings
    # Started from those settings (quick rounds, loopback allowed, state in the test's folder): one fleet.
    procs = start_providers(tmp_path, HOSTS)
    try:
        urls = [f"http://{a}:8088" for a in HOSTS.values()]
        until(lambda: all({m["name"] for m in requests.get(f"{u}/v1/fleet", timeout=5).json()["members"]}
                          == set(HOSTS) - {h} for u, h in zip(urls, HOSTS)))
    finally:
        stop(procs)


def test_a_second_run_changes_nothing_and_a_certificate_near_its_end_is_signed_again(tmp_path):
    play(tmp_path)
    before = {h: certificate(tmp_path, h).serial_number for h in HOSTS}
    again = play(tmp_path)
    assert again.changed == 0, [t for t in again.tasks if t.get("changed")]
    assert {h: certificate(tmp_path, h).serial_number for h in HOSTS} == before
    # A renewal window longer than the certificates' life: every one is "near its end".
    renewed = play(tmp_path, {"provider_api_fleet_renew_days": 400})
    assert renewed.changed > 0
    after = {h: certificate(tmp_path, h) for h in HOSTS}
    assert all(after[h].serial_number != before[h] for h in HOSTS)
    assert all(after[h].not_valid_after_utc.year >= time.gmtime().tm_year for h in HOSTS)


def test_rotating_the_ca_re_signs_every_certificate_and_trusts_both_until_the_old_one_is_dropped(tmp_path):
    play(tmp_path)
    old_dir = tmp_path / "controller-cache" / "fleet-ca-old"
    ca_dir(tmp_path).rename(old_dir)  # step 1 (docs/security.md): set the old CA aside
    play(tmp_path, {"provider_api_fleet_cas": [str(old_dir / "ca.crt")]})  # step 2: a new CA, both trusted
    new_ca = x509.load_pem_x509_certificate((ca_dir(tmp_path) / "ca.crt").read_bytes())
    old_ca = x509.load_pem_x509_certificate((old_dir / "ca.crt").read_bytes())
    assert _raw(new_ca) != _raw(old_ca)
    for host in HOSTS:
        cert = certificate(tmp_path, host)
        new_ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes,  # raises if not signed by the new CA
                                   *_ecdsa(cert))
        trusted = x509.load_pem_x509_certificates((tmp_path / host / "fleet" / "cas.pem").read_bytes())
        assert {_raw(c) for c in trusted} == {_raw(new_ca), _raw(old_ca)}
    play(tmp_path)  # step 3: the old CA dropped
    for host in HOSTS:
        trusted = x509.load_pem_x509_certificates((tmp_path / host / "fleet" / "cas.pem").read_bytes())
        assert [_raw(c) for c in trusted] == [_raw(new_ca)]


def _ecdsa(cert: x509.Certificate) -> tuple:
    from cryptography.hazmat.primitives.asymmetric import ec
    return (ec.ECDSA(cert.signature_hash_algorithm),)


def _raw(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

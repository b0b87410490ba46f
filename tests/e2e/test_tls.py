"""The provider's HTTPS front as provision.yml makes it: the certificate it serves is the one
on the provider, kept across runs, and a missing operator certificate fails the role naming
the file, before the running service is touched. Run by the molecule provision scenario."""
from __future__ import annotations

import hashlib
import os
import ssl

import pytest
import requests
from test_provider import CACHE, HOST, INVENTORY, on_provider

from support.ansible_run import run_playbook_file
from support.paths import ROOT

TLS_API = os.environ.get("DOCKPOOL_E2E_TLS_API", "")
if not TLS_API:
    pytest.skip("run by the molecule provision scenario (tests/e2e/molecule/provision)", allow_module_level=True)
TLS_PORT = int(TLS_API.rsplit(":", 1)[1])


def provider_fingerprint() -> str:
    """SHA-256 of the certificate file on the provider: what its operator hands to clients."""
    pem = on_provider("cat", "/etc/dockpool/tls/api.crt").stdout
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def served_fingerprint() -> str:
    pem = ssl.get_server_certificate(("127.0.0.1", TLS_PORT))
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def main_pids() -> list[str]:
    shown = on_provider("systemctl", "show", "--property=MainPID", "dockpool-api.service", "dockpool-tls.service")
    return shown.stdout.split()


def test_the_front_serves_the_providers_certificate_and_passes_the_token_on(tmp_path):
    assert served_fingerprint() == provider_fingerprint()
    cert = tmp_path / "provider.crt"
    cert.write_text(on_provider("cat", "/etc/dockpool/tls/api.crt").stdout)
    # Verified against exactly that certificate (its names include 127.0.0.1): no verify=False.
    token = (CACHE / "e2e.token").read_text().strip()
    reply = requests.get(f"{TLS_API}/v1/instances", verify=str(cert), timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 200 and "instances" in reply.json()
    refused = requests.get(f"{TLS_API}/v1/instances", verify=str(cert), timeout=30,
                           headers={"Authorization": "Bearer not-a-token"})
    assert refused.status_code == 401
    assert on_provider("stat", "-c", "%a %U", "/etc/dockpool/tls/api.key").stdout.split() == ["600", "root"]
    assert on_provider("systemctl", "is-active", "nginx.service", check=False).stdout.strip() != "active"


def test_a_missing_or_unreadable_certificate_fails_the_role_naming_it_and_changes_nothing():
    before_fingerprint, before_pids = served_fingerprint(), main_pids()
    before_settings = on_provider("stat", "-c", "%Y", "/etc/dockpool/api.json").stdout
    for path, reason in (("/nonexistent/provider.pem", "no such file"), (str(ROOT), "not a readable file")):
        run = run_playbook_file(ROOT / "provision.yml", inventory=INVENTORY, host=HOST,
                                extra_vars={"provider_api_tls_certificate_file": path,
                                            "provider_api_tls_key_file": path},
                                tags=["role::provider_api"])
        assert run.rc != 0
        failed = [t for t in run.tasks if t.get("failed")]
        messages = " ".join(r.get("msg", "") for t in failed for r in [t, *t.get("results", [])])
        assert failed and path in messages and reason in messages, failed
    assert served_fingerprint() == before_fingerprint
    assert main_pids() == before_pids
    assert on_provider("stat", "-c", "%Y", "/etc/dockpool/api.json").stdout == before_settings

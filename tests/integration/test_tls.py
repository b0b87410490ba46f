"""HTTPS for the API: the provider_api role's nginx front (its own template) before the real
service, the plain-HTTP token switch, forwarded headers trusted from the front only, and the
CLI's certificate pinning (like ssh's known_hosts) against the real service."""
from __future__ import annotations

import http.client
import json
import warnings

import pytest
import requests

from support.api_config import TOKENS, make_config
from support.api_process import api_process, free_port
from support.cli import cli
from support.tls_front import fingerprint_of, signed_by_a_ca, tls_front

pytestmark = pytest.mark.engine
ALICE = {"Authorization": f"Bearer {TOKENS['alice']}"}


@pytest.fixture
def provider(tmp_path):
    api_port, tls_port = free_port("0.0.0.0"), free_port()  # the service listens on every address
    api_port, tls_port = free_port(), free_port()
    settings = make_config(tmp_path, listen="0.0.0.0", port=api_port, tls_port=tls_port, plain_http_tokens=False)
    with api_process(tmp_path, settings) as url, tls_front(tmp_path / "front", api_port, tls_port=tls_port) as front:
        yield url, front


def insecure_get(url: str, **kwargs) -> requests.Response:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return requests.get(url, verify=False, timeout=30, **kwargs)


def test_tokens_go_over_https_and_plain_http_refuses_them(provider):
    plain, front = provider
    assert insecure_get(f"{front.url}/v1/instances", headers=ALICE).json() == {"instances": []}
    refused = requests.get(f"{plain}/v1/instances", headers=ALICE, timeout=30)
    assert refused.status_code == 403 and refused.json()["field"] == "Authorization"
    assert f":{front.port}" in refused.json()["error"] and "https://" in refused.json()["error"]
    # P2PRC's clients and the read-only routes keep plain HTTP.
    assert requests.get(f"{plain}/server_info", timeout=30).status_code == 200
    assert requests.get(f"{plain}/v1/specs", timeout=30).status_code == 200
    # Bad tokens over HTTPS are still refused, the same as before.
    assert insecure_get(f"{front.url}/v1/instances", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_forwarded_headers_count_from_the_front_only(provider):
    """A client that is not the front (here: from 127.0.0.3) cannot claim HTTPS or another address."""
    plain, _front = provider
    port = int(plain.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=("127.0.0.3", 0))
    conn.request("GET", "/v1/instances", headers={**ALICE, "X-Forwarded-Proto": "https", "X-Forwarded-For": "10.9.9.9"})
    reply = conn.getresponse()
    assert reply.status == 403, reply.read()
    conn.close()


def test_the_cli_pins_a_self_signed_certificate_and_refuses_another(tmp_path, provider):
    plain, front = provider
    served = fingerprint_of(front.certificate)
    shown = ":".join(served[i:i + 2] for i in range(0, 64, 2)).upper()
    config = tmp_path / "dockpool" / "config.json"
    unknown = cli(tmp_path, "login", front.url, token=TOKENS["alice"])  # no terminal to ask on
    assert unknown.returncode == 3 and shown in unknown.stderr.replace("\n", ""), unknown.stderr
    assert not config.exists()
    wrong = cli(tmp_path, "login", front.url, "--fingerprint", "ab" * 32, token=TOKENS["alice"])
    assert wrong.returncode == 3 and "not the" in wrong.stderr and not config.exists()
    pinned = cli(tmp_path, "login", front.url, "--fingerprint", shown, token=TOKENS["alice"])
    assert pinned.returncode == 0, pinned.stderr
    assert json.loads(config.read_text())["providers"][front.url] == {"token": TOKENS["alice"], "fingerprint": served}
    listed = cli(tmp_path, "ls", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
    # Our CLI never sends a token over plain HTTP to another machine (refused before any connection).
    far = cli(tmp_path, "login", "http://provider.invalid:8088", token=TOKENS["alice"])
    assert far.returncode == 3 and "https://" in far.stderr
    # The provider's certificate changes (an intercepting proxy would look the same): refused, exit 3.
    front.process.terminate()
    front.process.wait(timeout=10)
    api_port = int(plain.rsplit(":", 1)[1])
    with tls_front(tmp_path / "other", api_port, tls_port=front.port, cert_name="other") as other:
        changed = cli(tmp_path, "ls")
        text = changed.stderr.replace("\n", "")
        assert changed.returncode == 3, changed.stderr
        assert "not the one you trusted" in text and shown in text, text
        now = fingerprint_of(other.certificate)
        assert ":".join(now[i:i + 2] for i in range(0, 64, 2)).upper() in text
        again = cli(tmp_path, "login", front.url, token=TOKENS["alice"])
        assert again.returncode == 3 and json.loads(config.read_text())["providers"][front.url]["fingerprint"] == served


def test_the_front_answers_json_when_the_api_is_down(tmp_path):
    with tls_front(tmp_path, free_port(), answered=503) as front:  # nothing listens on the API's port
        reply = insecure_get(f"{front.url}/v1/specs")
        assert reply.status_code == 503 and "not answering" in reply.json()["error"]


def test_a_certificate_from_a_trusted_ca_is_checked_the_ordinary_way_and_not_pinned(tmp_path):
    api_port = free_port()
    ca, cert, key = signed_by_a_ca(tmp_path)
    with api_process(tmp_path, make_config(tmp_path, port=api_port)), \
            tls_front(tmp_path / "front", api_port, pair=(cert, key)) as front:
        # This machine trusts the test's CA (as it would a public one): no question, no pin.
        done = cli(tmp_path, "login", front.url, token=TOKENS["alice"], env={"REQUESTS_CA_BUNDLE": str(ca)})
        assert done.returncode == 0, done.stderr
        assert json.loads((tmp_path / "dockpool" / "config.json").read_text())["providers"][front.url] == {
            "token": TOKENS["alice"]}
        # Without that CA the same certificate is unknown: refused, its fingerprint shown.
        unknown = cli(tmp_path / "elsewhere", "login", front.url, token=TOKENS["alice"],
                      env={"REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"})
        assert unknown.returncode == 3 and "not signed by a CA" in unknown.stderr

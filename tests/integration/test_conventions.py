"""What OpenAPI and Prometheus users check with their own tools, on the real service over
HTTP: openapi-spec-validator on the served /openapi.json, `promtool check metrics` on the
served /metrics, and who is shown the per-client series."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import requests
from openapi_spec_validator import validate

from dockpool_api.auth import hash_token
from support.api_config import TOKENS, make_config
from support.api_process import api_process

pytestmark = pytest.mark.engine

SCRAPE_TOKEN = "scrape-token-0123456789"
LABEL_VALUE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@pytest.fixture
def plain(tmp_path):
    with api_process(tmp_path, make_config(tmp_path)) as url:
        yield url


@pytest.fixture
def service(tmp_path):
    settings = make_config(tmp_path, metrics_token_sha256=hash_token(SCRAPE_TOKEN))
    with api_process(tmp_path, settings) as url:
        yield url


def scrape(url: str, token: str = "") -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{url}/metrics", headers=headers, timeout=10)


def client_labels(page: str) -> set[str]:
    """Every value of a ``client`` label on the page."""
    return {value for line in page.splitlines() if not line.startswith("#")
            for name, value in LABEL_VALUE.findall(line) if name == "client"}


def test_the_served_openapi_document_is_valid_for_the_version_it_declares(plain):
    document = requests.get(f"{plain}/openapi.json", timeout=10).json()
    validate(document)  # picks the rules of the version the document declares; raises naming the first error
    assert document["openapi"] == "3.0.3"


def test_promtool_accepts_the_served_metrics(plain):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/setup.sh installs Debian's prometheus package"
    page = scrape(plain, TOKENS["ops"]).text  # an admin's: the per-client series too
    assert 'dockpool_usage_memory_byte_seconds_total{client="alice"}' in page
    checked = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), \
        checked.stdout + checked.stderr


def test_client_names_only_for_the_scrape_credential_and_admins(service):
    everyone = set(TOKENS)
    anonymous = scrape(service)
    assert anonymous.status_code == 200 and "dockpool_http_requests_total" in anonymous.text
    assert client_labels(anonymous.text) == set() and "dockpool_usage_" not in anonymous.text
    # No client's name anywhere on the page: neither as a label value nor as an instance name's prefix.
    assert not [name for name in everyone if f'"{name}"' in anonymous.text or f'"{name}-' in anonymous.text]
    own = scrape(service, TOKENS["alice"])  # an ordinary client sees what anyone sees
    assert own.status_code == 200 and client_labels(own.text) == set() and "dockpool_usage_" not in own.text
    assert client_labels(scrape(service, SCRAPE_TOKEN).text) == everyone
    assert client_labels(scrape(service, TOKENS["ops"]).text) == everyone
    wrong = scrape(service, "not-the-scrape-token-0123")
    assert wrong.status_code == 401 and wrong.json()["field"] == "Authorization"


def test_the_scrape_credential_opens_metrics_where_read_routes_are_closed(tmp_path):
    settings = make_config(tmp_path, open_read_routes=False, metrics_token_sha256=hash_token(SCRAPE_TOKEN))
    with api_process(tmp_path, settings) as url:
        assert scrape(url).status_code == 401
        assert client_labels(scrape(url, SCRAPE_TOKEN).text) == set(TOKENS)
        assert scrape(url, TOKENS["bob"]).status_code == 200
        # The scrape credential is for /metrics only: it is no client token.
        assert requests.get(f"{url}/v1/specs", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"},
                            timeout=10).status_code == 401


def test_the_role_writes_only_the_scrape_credentials_hash(tmp_path):
    from integration.test_fleet_pki import HOSTS, play  # the role's fleet_pki.yml and settings template, run for real

    play(tmp_path, {"provider_api_metrics_token": SCRAPE_TOKEN})
    for host in HOSTS:
        rendered = (tmp_path / host / "api.json").read_text()
        assert SCRAPE_TOKEN not in rendered
        assert json.loads(rendered)["metrics_token_sha256"] == hash_token(SCRAPE_TOKEN)
    (tmp_path / "none").mkdir()
    play(tmp_path / "none")  # without one, none: /metrics serves nobody the series that name clients
    assert json.loads((tmp_path / "none" / next(iter(HOSTS)) / "api.json").read_text())["metrics_token_sha256"] == ""

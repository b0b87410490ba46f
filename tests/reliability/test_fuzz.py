"""schemathesis against the service's own /openapi.json, every route, with a valid
token over HTTPS (the provider's nginx front, as the role configures it) and without
one over plain HTTP: no 5xx, every answer as the description says, and no container
left behind."""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest

from reliability.conftest import FUZZ_EXAMPLES, all_container_ids
from support.api_config import TOKENS, make_config
from support.api_process import api_process
from support.paths import ROOT, VENV_BIN
from support.tls_front import tls_front

pytestmark = pytest.mark.engine


def fuzz(url: str, headers: list[str], ca: Optional[Path] = None) -> tuple[int, str, int]:
    argv = [str(VENV_BIN / "schemathesis"), "--config-file", str(ROOT / "tests" / "reliability" / "schemathesis.toml"),
            "run", f"{url}/openapi.json", "-n", str(FUZZ_EXAMPLES), "--output-sanitize", "false", "--no-color",
            "--request-timeout", "30"]
    if ca:
        argv += ["--tls-verify", str(ca)]  # the front's own certificate, names checked
    for header in headers:
        argv += ["-H", header]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    match = re.search(r"(\d+) generated", done.stdout)
    return done.returncode, done.stdout, int(match.group(1)) if match else 0


def test_fuzzing_finds_no_server_error_and_every_answer_conforms(tmp_path, engine, figures):
    before = all_container_ids(engine)
    # Peers the fuzzer invents are never contacted: no network is allowed for them.
    settings = make_config(tmp_path, peer_networks=[], peer_deny_networks=[], threads=8)
    started, cases = time.monotonic(), {}
    with api_process(tmp_path, settings) as url, tls_front(tmp_path / "front", int(url.rsplit(":", 1)[1])) as front:
        for label, base, headers, ca in (
            ("with a token, over HTTPS", front.url, [f"Authorization: Bearer {TOKENS['alice']}"], front.certificate),
            ("without a token, over HTTP", url, [], None),
        ):
            code, output, generated = fuzz(base, headers, ca)
            assert code == 0, output[-6000:]
            assert "found" not in output.split("Test cases:")[-1].splitlines()[1], output[-3000:]
            cases[label] = generated
    assert all_container_ids(engine) <= before, "fuzzing left a container behind"
    figures["fuzzing"] = {"cases": cases, "total": sum(cases.values()), "server_errors": 0, "nonconforming": 0,
                          "containers_left": 0, "seconds": round(time.monotonic() - started)}
    assert sum(cases.values()) >= 1000

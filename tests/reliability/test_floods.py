"""One unauthenticated source must not lock others out (issue 34, items 10 and 11): floods from one
loopback address (tests/support/floods.py, bounded in count and time) against the real API on its
plain port and behind the role's nginx front, and against a real provider's fleet listener, while a
real client from another address keeps being served."""
from __future__ import annotations

import http.client
import json
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import requests
import yaml

from dockpool.firewall import FirewallSettings, apply
from dockpool_api.fleet import tls as fleet_tls
from dockpool_api.fleet.transport import Call, Endpoint, HttpTransport
from support.api_config import TOKENS, make_config
from support.api_process import api_process, free_port
from support.floods import FLOOD_SOURCE, Probes, flood, probe
from support.netns import own_network_namespace
from support.paths import ROOT
from support.tls_front import tls_front
from support.two_providers import FLEET_PORT, two_providers


def test_a_slowloris_on_the_plain_port_leaves_healthz_answering(tmp_path, figures):
    port = free_port("0.0.0.0")  # free on every address: the service listens on all of them
    with api_process(tmp_path, make_config(tmp_path, listen="0.0.0.0", port=port)):
        with flood("127.0.0.1", port, count=110, seconds=30, trickle=3.0, mode="header") as stats:
            time.sleep(3)  # the flood's connections are all open
            probes = probe("127.0.0.1", port, "/healthz", count=30, pause=0.5, timeout=5)
    figures["slowloris_8088_healthz"] = probes.summary()
    print(f"slowloris on the plain port: {stats}; /healthz: {probes.summary()}")
    assert stats.opened >= 110, stats
    _all_answered_fast(probes)


def test_a_header_that_never_ends_is_cut_at_the_header_timeout(tmp_path):
    """Five connections (under the per-source share) each sending a header byte every second, and five
    that send nothing: the default header_timeout (10 s) closes every one, however busy each keeps its
    connection."""
    port = free_port("0.0.0.0")  # free on every address: the service listens on all of them
    with api_process(tmp_path, make_config(tmp_path, listen="0.0.0.0", port=port)):
        began = time.monotonic()
        with flood("127.0.0.1", port, count=5, seconds=14, trickle=1.0, mode="header") as slow, \
                flood("127.0.0.1", port, count=5, seconds=14, mode="") as silent:
            while min(slow.closed_by_server, silent.closed_by_server) < 5 and time.monotonic() - began < 14:
                time.sleep(0.2)
            cut = time.monotonic() - began
    print(f"headers that never end: {slow}; nothing sent: {silent}; the first five of each cut after {cut:.1f} s")
    assert slow.closed_by_server >= 5 and silent.closed_by_server >= 5 and 9 < cut < 13, (slow, silent, cut)


def test_slow_bodies_through_the_https_front_leave_authenticated_requests_answering(tmp_path, figures):
    api_port, tls_port = free_port("0.0.0.0"), free_port()  # the service listens on every address
    settings = make_config(tmp_path, listen="0.0.0.0", port=api_port, tls_port=tls_port)
    with api_process(tmp_path, settings), tls_front(tmp_path / "front", api_port, tls_port=tls_port):
        with flood("127.0.0.1", tls_port, count=110, seconds=30, trickle=3.0, mode="body", tls=True) as stats:
            time.sleep(4)
            # 30 authenticated clients at once, three requests each, from another address.
            with ThreadPoolExecutor(max_workers=30) as pool:
                rounds = list(pool.map(lambda _: probe(
                    "127.0.0.1", tls_port, "/v1/instances", count=3, pause=1.0, timeout=5, tls=True,
                    headers={"Authorization": f"Bearer {TOKENS['alice']}"}), range(30)))
    probes = Probes([t for r in rounds for t in r.latencies], [f for r in rounds for f in r.failures])
    figures["slow_bodies_8443_instances"] = probes.summary()
    print(f"slow bodies through nginx: {stats}; GET /v1/instances: {probes.summary()}")
    assert stats.opened >= 110, stats
    _all_answered_fast(probes, seconds=3.0)  # 30 TLS handshakes at once on two cores


def test_the_front_answers_429_in_json_to_an_address_over_its_share(tmp_path):
    api_port, tls_port = free_port("0.0.0.0"), free_port()  # the service listens on every address
    settings = make_config(tmp_path, listen="0.0.0.0", port=api_port, tls_port=tls_port)
    with api_process(tmp_path, settings), tls_front(tmp_path / "front", api_port, tls_port=tls_port):
        with flood("127.0.0.1", tls_port, count=40, seconds=20, trickle=3.0, mode="body", tls=True):
            time.sleep(3)
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            connection = http.client.HTTPSConnection("127.0.0.1", tls_port, timeout=5, context=context,
                                                     source_address=(FLOOD_SOURCE, 0))
            connection.request("GET", "/v1/specs")
            answer = connection.getresponse()
            body = answer.read()
            connection.close()
    assert answer.status == 429 and answer.getheader("Content-Type") == "application/json", (answer.status, body)
    assert json.loads(body)["field"] == "connections" and json.loads(body)["detail"]["allowed"] == 32, body


def test_one_source_past_a_thousand_connections_to_the_front_is_held_at_its_firewall_share(tmp_path, figures):
    """1,100 header-trickling TLS connections from one address (past nginx's old 1,024 per worker),
    against the role's nginx front and the API in a network namespace of the test's own, with the
    firewall's rules applied there by the core's own apply(): the kernel resets the source's
    connections past its share before they reach nginx, and an authenticated client from another
    address keeps being served on the front all along."""
    per_source = yaml.safe_load((ROOT / "roles" / "firewall" / "defaults" / "main.yml").read_text())[
        "firewall_connections_per_source"]
    with own_network_namespace():
        api_port, tls_port = free_port(), free_port()
        apply(FirewallSettings.from_dict({"limited_ports": [api_port, tls_port], "connections_per_source": per_source}))
        settings = make_config(tmp_path, listen="0.0.0.0", port=api_port, tls_port=tls_port)
        with api_process(tmp_path, settings), tls_front(tmp_path / "front", api_port, tls_port=tls_port):
            with flood("127.0.0.1", tls_port, count=1100, seconds=45, trickle=3.0, mode="header", tls=True) as stats:
                began = time.monotonic()
                while stats.opened + stats.failed < 1100 and time.monotonic() - began < 30:
                    time.sleep(0.2)
                probes = probe("127.0.0.1", tls_port, "/v1/instances", count=20, pause=0.5, timeout=5, tls=True,
                               headers={"Authorization": f"Bearer {TOKENS['alice']}"})
                tried = stats.opened + stats.failed
    figures["one_source_1100_header_connections_8443"] = probes.summary()
    print(f"1,100 header connections from one source to the front: {stats}; GET /v1/instances: {probes.summary()}")
    assert tried >= 1100, stats
    assert stats.peak <= per_source and stats.failed >= 1100 - per_source, stats  # the rest were reset at the SYN
    _all_answered_fast(probes)


def test_slow_bodies_from_sixteen_sources_through_the_front_leave_reads_and_the_plain_port_answering(tmp_path, figures):
    """16 addresses with 32 slow bodies each through the front (512: the API's whole listener): the
    front passes on only so many requests that send a body, so an authenticated read through the
    front and /healthz on the plain port from another address are served while they last."""
    api_port, tls_port = free_port("0.0.0.0"), free_port()  # the service listens on every address
    settings = make_config(tmp_path, listen="0.0.0.0", port=api_port, tls_port=tls_port)
    sources = [f"127.0.0.{16 + i}" for i in range(16)]
    with api_process(tmp_path, settings), tls_front(tmp_path / "front", api_port, tls_port=tls_port):
        with ExitStack() as attacks:
            floods = [attacks.enter_context(flood("127.0.0.1", tls_port, count=32, seconds=40, trickle=3.0,
                                                  mode="body", tls=True, source=s)) for s in sources]
            time.sleep(6)  # every source's 32 are open, their headers sent
            front = probe("127.0.0.1", tls_port, "/v1/instances", count=16, pause=0.5, timeout=5, tls=True,
                          headers={"Authorization": f"Bearer {TOKENS['alice']}"})
            plain = probe("127.0.0.1", api_port, "/healthz", count=8, pause=0.5, timeout=5)
            opened = sum(f.opened for f in floods)
    figures["sixteen_sources_slow_bodies_8443_instances"] = front.summary()
    print(f"16 sources x 32 slow bodies through nginx ({opened} opened): GET /v1/instances on the front: "
          f"{front.summary()}; /healthz on the plain port: {plain.summary()}")
    assert opened >= 16 * 32 and min(f.peak for f in floods) >= 16, [f.peak for f in floods]
    _all_answered_fast(front, seconds=3.0)
    _all_answered_fast(plain)


def test_bare_connections_to_the_fleet_listener_leave_the_members_exchanging(tmp_path, figures):
    with two_providers(tmp_path) as (source, target, _engine2):
        fleet = tmp_path / "target" / "fleet"
        context = fleet_tls.FleetTLS(str(fleet / "fleet.crt"), str(fleet / "fleet.key"),
                                     str(tmp_path / "fleet-ca" / "ca.crt")).client_context()
        # 40 bare TCP connections (no TLS at all) to the source's fleet listener, reopened when dropped,
        # for longer than two of the fleet's expiries (5 s).
        with flood("127.0.0.1", FLEET_PORT, count=40, seconds=16, mode="") as stats:
            time.sleep(1)
            probes = Probes()
            for _ in range(24):  # the target asks the source what a replica deletion or exchange would
                began = time.monotonic()
                try:
                    answer = HttpTransport(context).open(Endpoint("127.0.0.1", FLEET_PORT, "source"),
                                                         Call("GET", "/v1/fleet/identity", deadline=5))
                    answer.read()
                    answer.close()
                    probes.latencies.append(time.monotonic() - began)
                except OSError as exc:
                    probes.failures.append(f"{type(exc).__name__}: {exc}")
                time.sleep(max(0.0, 0.5 - (time.monotonic() - began)))
            members = {p: [m["name"] for m in _members(p.url)] for p in (source, target)}
    figures["bare_flood_fleet_identity"] = probes.summary()
    print(f"bare connections to the fleet listener: {stats}; member requests: {probes.summary()}")
    assert stats.opened >= 40, stats
    _all_answered_fast(probes)
    # Neither expired the other while the flood lasted: nothing could be restored over a live member.
    assert members == {source: ["target"], target: ["source"]}, members


def _members(url: str) -> list[dict]:
    return [m for m in requests.get(f"{url}/v1/fleet", timeout=5).json()["members"] if m.get("tier") == "member"]


def _all_answered_fast(probes: Probes, seconds: float = 2.0) -> None:
    assert not probes.failures, probes.summary()
    assert max(probes.latencies) < seconds, probes.summary()

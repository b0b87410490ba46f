"""A provider's HTTP API as typed Python calls, one per route the CLI uses; every failure becomes a
CliError with its exit code. Only this class calls ``call``: the commands never build a request."""
from __future__ import annotations

import time
from typing import Any, Iterator, Optional
from urllib.parse import quote

import requests

from .errors import AUTH, UNAVAILABLE, CliError, code_for_status
from .shapes import Health, HeldReplica, InstanceView, MoveOffer, MoveProgress, MoveResult, Peer, ReplicaView, Specs, UsageReport
from .tls import PinnedAdapter, mismatch

CHUNK = 1024 * 1024


class Provider:
    def __init__(self, url: str, token: Optional[str] = None, fingerprint: Optional[str] = None,
                 timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.fingerprint = fingerprint
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "dockpool-cli"
        if fingerprint:  # a self-signed provider: its certificate, not a CA, is what is trusted
            self.session.mount("https://", PinnedAdapter(fingerprint))
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def unreachable(self, exc: requests.RequestException) -> CliError:
        """A transport failure as the CLI reports it; a certificate problem is an auth failure."""
        if isinstance(exc, requests.exceptions.SSLError):
            if self.fingerprint and "fingerprints did not match" in str(exc).lower():
                return mismatch(self.url, self.fingerprint)
            if "certificate verify failed" in str(exc):
                return CliError(f"the certificate of {self.url} is not signed by a CA this machine trusts; "
                                f"`dockpool login {self.url}` shows its fingerprint to check with the operator "
                                "and pin", AUTH)
        return CliError(f"{self.url} cannot be reached: {exc.__class__.__name__}: {exc}", UNAVAILABLE)

    def call(self, method: str, path: str, *, timeout: Optional[float] = None, **kwargs: Any) -> Any:
        try:
            reply = self.session.request(method, f"{self.url}{path}", timeout=timeout or self.timeout,
                                         allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            raise self.unreachable(exc) from None
        try:
            body = reply.json()
        except ValueError:
            body = None
        if reply.status_code >= 400:
            message = body.get("error") if isinstance(body, dict) and body.get("error") else reply.reason
            detail = body.get("detail") if isinstance(body, dict) else None
            raise CliError(f"{self.url} answered {reply.status_code}: {message}", code_for_status(reply.status_code), detail,
                           reply.status_code)
        if body is None:
            raise CliError(f"{self.url}{path} did not answer JSON (is this a dockpool provider?)", UNAVAILABLE)
        return body

    @property
    def logged_in(self) -> bool:
        """Whether calls carry a token (a peer read from a table gets none)."""
        return self.session.headers.get("Authorization") is not None

    # ---- instances -------------------------------------------------------------------------

    def instances(self) -> list[InstanceView]:
        return self.call("GET", "/v1/instances")["instances"]

    def instance(self, ref: str) -> InstanceView:
        return self.call("GET", f"/v1/instances/{quote(ref, safe='')}")

    def create(self, body: dict[str, Any]) -> InstanceView:
        # The provider answers once the instance's sshd does; that can take a while on a busy host.
        return self.call("POST", "/v1/instances", json=body, timeout=max(self.timeout, 180))

    def action(self, ref: str, verb: str) -> InstanceView:
        return self.call("POST", f"/v1/instances/{quote(ref, safe='')}/{verb}", timeout=max(self.timeout, 120))

    def remove(self, ref: str) -> None:
        self.call("DELETE", f"/v1/instances/{quote(ref, safe='')}", timeout=max(self.timeout, 120))

    # ---- replicas --------------------------------------------------------------------------

    def replicate(self, ref: str) -> ReplicaView:
        """Refresh the instance's replica now; a first one copies the whole disk, hence the wait."""
        return self.call("POST", f"/v1/instances/{quote(ref, safe='')}/replicate", timeout=max(self.timeout, 900))

    def replicas(self, ref: str) -> list[ReplicaView]:
        return self.call("GET", f"/v1/instances/{quote(ref, safe='')}/replicas")["replicas"]

    def held_replicas(self) -> list[HeldReplica]:
        """The replicas this provider holds of the client's instances, whoever ran them."""
        return self.call("GET", "/v1/replicas")["replicas"]

    def restore(self, source: str, name: str) -> InstanceView:
        """Start ``name`` here from the replica of it that ``source`` (a fleet name) shipped; a
        whole disk may be unpacked first, hence the wait."""
        return self.call("POST", f"/v1/replicas/{quote(source, safe='')}/{quote(name, safe='')}/restore", timeout=1800)

    # ---- moves -----------------------------------------------------------------------------

    def fleet_name(self) -> Optional[str]:
        """The name this provider has in its fleet: providers know each other by it (their
        certificates), whatever URL this client uses."""
        return self.call("GET", "/v1/fleet").get("provider")

    def offer_move(self, request: dict[str, Any]) -> MoveOffer:
        """Asked of the target: would the instance fit here? A grant to move it in; a refusal
        (401, 400, 409, 429) means nothing has moved."""
        return self.call("POST", "/v1/moves", json=request)

    def send_move(self, ref: str, offer: MoveOffer) -> MoveResult:
        """Asked of the source: stream ``ref`` to the target that made ``offer``; it answers once
        the instance runs there (or is running here again), so a whole filesystem may pass first."""
        return self.call("POST", f"/v1/instances/{quote(ref, safe='')}/move", timeout=3700,
                         json={"target": offer["provider"], "move": offer["id"], "grant": offer["grant"]})

    def move_progress(self, move: str) -> MoveProgress:
        """Asked of the target while the source streams: short, so a busy target only skips an update."""
        return self.call("GET", f"/v1/moves/{move}", timeout=5)

    def cancel_move(self, move: str) -> None:
        """Give the target's grant back, so it does not count against the client's moves there."""
        self.call("DELETE", f"/v1/moves/{move}", timeout=10)

    # ---- the fleet -------------------------------------------------------------------------

    def peers(self) -> list[Peer]:
        return self.call("GET", "/v1/peers")["ip_address"]

    def forget_peer(self, peer: str) -> list[str]:
        """(Administrators) remove an entry, by name or address, from the peer table; what was removed."""
        return self.call("DELETE", f"/v1/peers/{quote(peer, safe='')}")["removed"]

    def specs(self) -> Specs:
        return self.call("GET", "/v1/specs")

    def health(self, timeout: float) -> Health:
        return self.call("GET", "/healthz", timeout=timeout)

    def latency(self, tries: int = 3) -> tuple[float, Health]:
        """The best of a few round trips to /healthz, in seconds: measured here, by the client; and
        the provider's last answer there (its health, and whether it is draining)."""
        best, health = float("inf"), Health()
        for _ in range(tries):
            started = time.perf_counter()
            health = self.health(timeout=5)
            best = min(best, time.perf_counter() - started)
        return best, health if isinstance(health, dict) else Health()

    # ---- usage and speed -------------------------------------------------------------------

    def usage(self, since: Optional[str] = None, until: Optional[str] = None) -> UsageReport:
        """What the client's instances used here between two times (seconds since the epoch;
        the provider's defaults where not given)."""
        query = {k: v for k, v in (("since", since), ("until", until)) if v}
        return self.call("GET", "/v1/usage", params=query)

    def download(self, size: int) -> tuple[int, float]:
        """Bytes received and seconds taken by the download speed test."""
        started = time.perf_counter()
        received = 0
        try:
            with self.session.get(f"{self.url}/v1/speedtest/download", params={"bytes": size}, stream=True,
                                  timeout=self.timeout) as reply:
                if reply.status_code != 200:
                    raise CliError(f"{self.url} answered {reply.status_code} to the download test",
                                   code_for_status(reply.status_code))
                for chunk in reply.iter_content(CHUNK):
                    received += len(chunk)
        except requests.RequestException as exc:
            raise self.unreachable(exc) from None
        return received, time.perf_counter() - started

    def upload(self, size: int) -> tuple[int, float]:
        """Bytes the provider counted and the seconds the whole upload took here."""

        def body() -> Iterator[bytes]:
            block = b"\0" * CHUNK
            left = size
            while left > 0:  # bounded: stops after ``size`` bytes
                yield block[: min(CHUNK, left)]
                left -= CHUNK

        started = time.perf_counter()
        counted = self.call("POST", "/v1/speedtest/upload", data=body(),
                            headers={"Content-Type": "application/octet-stream"})
        return int(counted["bytes"]), time.perf_counter() - started

"""Spreading the fleet's spend book (counters.py) between members, on a timer of its own.

Each round (``gossip_interval``) this provider signs its own counters anew when its ledger
counted more (this month's and last month's totals per client, read from the ledger on disk,
so a restart signs the same totals again with a higher version: nothing counted twice, nothing
lost), then exchanges with ``gossip_fanout`` members chosen at random over the fleet's mutual
TLS (``POST /v1/fleet/spend``): it sends the hash of its digest (provider -> version held);
a member whose digest hashes the same answers so, and that is the round (a quiet fleet sends
a few dozen bytes); otherwise the two swap digests and the sets each lacks (push-pull), at
most ``ANSWER_BYTES`` of sets per answer. The book is kept in ``spend.json`` beside the peer
table, so what a member counted of others survives its restart too.

Apart from membership's gossip on purpose: the table's exchange is being reworked (digests,
then differences) and budgets must not depend on its message format; the counters need only
the members' names, addresses and pinned keys, which they read from the table.
"""
from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

from dockpool.atomicfile import read_json, write_json
from dockpool.errors import Busy, DockpoolError, InvalidInput

from ..packages import charge
from ..usage_report import UsageReport, month_start
from .counters import ANSWER_BYTES, MAX_CLIENTS, RESOURCES, CounterSigner, Months, SpendBook, month_of
from .gossip import RateLimit
from .members import Member
from .membership import Membership
from .transport import Call, Transport, ask, route_path

log = logging.getLogger("dockpool.spend")
ROUNDING = {"cpu_seconds": 3, "memory_gib_hours": 6, "gpu_seconds": 3, "tx_bytes": 0, "credits": 6}  # no float noise re-signed


class FleetSpend:
    def __init__(self, me: str, peers: Membership, usage: UsageReport, state_dir: str, transport: Optional[Transport],
                 interval: float, fanout: int, answers: int, clock: Callable[[], float] = time.time,
                 prices: Callable[[str], dict[str, float]] = lambda _owner: {}) -> None:
        self.me, self.peers, self.usage, self.transport, self.interval = me, peers, usage, transport, interval
        self.fanout = fanout
        self.prices = prices  # a client's prices here (her package's): what this provider charges her
        self.clock = clock
        self.path = os.path.join(state_dir, "spend.json")
        self.signer = CounterSigner(os.path.join(state_dir, "membership.key"))  # made by Membership before
        if self.signer.public != peers.public_key:
            raise InvalidInput(f"{state_dir}/membership.key is not the key of this provider's fleet entry", "peers_file")
        self.answers = RateLimit(3 * answers, interval)  # an exchange is up to three calls
        self._lock = threading.Lock()
        self.book = self._load()
        self.rounds = 0
        self.bytes_last_round = 0

    # ---- the book on disk ------------------------------------------------------------------

    def _load(self) -> SpendBook:
        try:
            book = SpendBook.load(self.me, read_json(self.path))
        except FileNotFoundError:
            return SpendBook(self.me, pins={self.me: self.signer.public})
        except (OSError, ValueError, KeyError, TypeError, InvalidInput) as exc:
            aside = f"{self.path}.corrupt"
            log.error("spend book %s is unreadable (%s); kept as %s, learning the fleet's spend again from its members",
                      self.path, getattr(exc, "message", exc), aside)
            os.replace(self.path, aside)
            return SpendBook(self.me, pins={self.me: self.signer.public})
        book.pins[self.me] = self.signer.public  # this provider's own key is the one it holds now
        return book

    def _save(self) -> None:
        write_json(self.path, self.book.dump(), mode=0o640)

    # ---- this provider's own counters ------------------------------------------------------

    def own_months(self) -> Months:
        """This month's and last month's totals per client, from the ledger (the largest
        ``MAX_CLIENTS`` spenders of a month, should there be more)."""
        now = self.clock()
        this = month_start(now)
        last = month_start(this - 1)
        months: Months = {}
        for month, since, until in ((month_of(now), this, now), (month_of(last), last, this)):
            clients = {}
            for owner, used in self.usage.by_owner(since, until).items():
                used = {**used, "credits": charge(used, self.prices(owner))}  # at this provider's prices
                rounded = {r: round(used[r], ROUNDING[r]) for r in RESOURCES}
                rounded = {r: (int(v) if r == "tx_bytes" else v) for r, v in rounded.items() if v > 0}
                if rounded:
                    clients[owner] = rounded
            if len(clients) > MAX_CLIENTS:
                log.warning("spend: %d clients used %s this month; the fleet hears of the %d who used the most CPU",
                            len(clients), self.me, MAX_CLIENTS)
                kept = sorted(clients, key=lambda c: -clients[c].get("cpu_seconds", 0.0))[:MAX_CLIENTS]
                clients = {c: clients[c] for c in kept}
            if clients:
                months[month] = clients
        return months

    def refresh(self) -> bool:
        """Sign this provider's counters anew if they changed; whether they did."""
        months = self.own_months()
        with self._lock:
            changed = self.book.own(self.signer, months, time.time_ns() // 1_000_000)
            self.book.prune(month_of(self.clock()))
            if changed:
                self._save()
        return changed

    def others(self, client: str) -> dict[str, float]:
        """What ``client`` used this month on the other members, as far as this one knows."""
        with self._lock:
            return self.book.others(client, month_of(self.clock()))

    def by_provider(self, client: str) -> dict[str, dict[str, float]]:
        """Provider -> what ``client`` used there this month (this provider's as last signed)."""
        with self._lock:
            return self.book.spent(client, month_of(self.clock()))

    # ---- the exchange ----------------------------------------------------------------------

    def _member_key(self, provider: str) -> Optional[str]:
        entry = self.peers.member(provider)
        return entry.key if entry else None

    def answer(self, caller: str, body: Any) -> dict[str, Any]:
        """``POST /v1/fleet/spend`` from the member ``caller`` (SpendBook.answer), a bounded number
        of times per interval whatever the number of members that pick this one."""
        if not self.answers.take():
            raise Busy(f"spend exchanges: this provider answers {self.answers.count} per {self.interval:g} s; "
                       "exchange with another member", "digest", {"retry_after": max(1, round(self.interval))})
        with self._lock:
            before = self.book.digest()
            try:
                answer = self.book.answer(body, self._member_key)
            except InvalidInput as exc:
                log.info("spend: %s sent %s", caller, exc.message)
                raise
            if self.book.digest() != before:
                self._save()
        return answer

    def _call(self, member: Member, body: dict[str, Any]) -> Optional[dict[str, Any]]:
        assert self.transport is not None
        sent = json.dumps(body, separators=(",", ":")).encode()
        with self._lock:
            self.bytes_last_round += len(sent)
        status, text = ask(self.transport, member, Call("POST", route_path("v1", "fleet", "spend"), sent,
                                                        deadline=min(max(1.0, self.interval), 10.0), most=2 * ANSWER_BYTES))
        with self._lock:
            self.bytes_last_round += len(text)
        if status != 200:
            log.info("spend: %s answered %d: %s", member.name, status, text[:200])
            return None
        return json.loads(text)

    def round(self) -> None:
        """Sign what changed, then exchange with ``fanout`` live members chosen at random."""
        self.rounds += 1
        self.bytes_last_round = 0
        self.refresh()
        if self.transport is None:
            return
        live = [m for m in self.peers.targets(self.peers.max_peers) if self.peers.member(m.name) is not None]
        if not live:
            return
        chosen = random.sample(live, min(self.fanout, len(live)))
        with ThreadPoolExecutor(max_workers=len(chosen)) as pool:
            list(pool.map(self._exchange_with, chosen))

    def _exchange_with(self, member: Member) -> None:
        """The hash of the digests; if they differ, the digests and the sets each lacks."""
        try:
            with self._lock:
                message: Optional[dict[str, Any]] = self.book.ask()
            for _step in range(3):  # the hash; the digests and what each lacks; what it still lacks
                if message is None:
                    break
                answer = self._call(member, message)
                if answer is None:
                    return
                with self._lock:
                    before = self.book.digest()
                    message = self.book.follow_up(answer, self._member_key)
                    if self.book.digest() != before:
                        self._save()
        except (OSError, ValueError, DockpoolError) as exc:  # ssl.SSLError is an OSError
            log.info("spend: exchange with %s failed: %s", member.name, getattr(exc, "message", exc))

    def start(self) -> None:
        """Sign once now (from the ledger on disk), then run the rounds in a daemon thread."""
        try:
            self.refresh()
        except DockpoolError as exc:
            log.error("spend: %s", exc.message)

        def run() -> None:
            while True:
                began = time.monotonic()
                try:
                    self.round()
                except Exception:  # one bad round must not end the exchange for good
                    log.exception("spend round %d failed", self.rounds)
                time.sleep(max(0.0, self.interval - (time.monotonic() - began)))

        threading.Thread(target=run, name="spend", daemon=True).start()

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"round": self.rounds, "bytes_last_round": self.bytes_last_round, "digest": self.book.digest()}


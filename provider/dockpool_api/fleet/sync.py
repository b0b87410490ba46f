"""One exchange between two members: summaries first, then only the differences, news riding along.

    1. opening  {"root", "news"}                 -> {"root", "news"} (+ "buckets" when the roots differ)
    2. digests  {"buckets", "digests", "dead"}   -> {"entries", "want", "dead"}
    3. entries  {"entries"}                      -> {}

A quiet fleet stops at 1: two hashes and no news, whatever the number of members. When the
tables differ, step 2 sends names and versions of the differing buckets only (and the members
each side buried there, so a member dead on one side is not kept alive by the other), and
step 3 pushes what the other side asked for. Each side takes a message's news before
comparing, so a change that rode along as news needs no step 2.

News is a member's newer signed entry (``alive``) or a suspicion (``suspect``: name, version,
and how long ago it was raised); see suspicion.py for the failure detector it serves.

What a fleet certificate alone can do is bounded, since any holder of one can call: only a live
member of this table (by its certificate's name) is heard on others' suspicions and deaths; a
caller not yet in the table (a provider joining through us) may offer its own entry and nothing
else. A claim that another member is suspect or dead counts only at the exact version held here,
is dated at most ``max_age`` seconds back, and is a suspicion here, never a burial: its victim
refutes it by signing once more, as for any suspicion.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional, Protocol

from dockpool.errors import InvalidInput

from .broadcasts import Broadcasts
from .digest import BUCKETS, bucket_of, compare

CLAIM_AGE = 10.0  # seconds back a heard suspicion may be dated, at most (the service: two rounds)
NEWS_BUDGET = 8192  # bytes of news per message (memberlist's 1,400-byte packets; one HTTP body carries a few)
MAX_NAMES = 8192  # names in a digest or a request for entries, at most


class Table(Protocol):
    """What an exchange needs of the membership table (membership.py)."""

    @property
    def name(self) -> str: ...

    def root(self) -> str: ...
    def version_of(self, name: str) -> Optional[int]: ...
    def bucket_hashes(self) -> list[str]: ...
    def digests(self, buckets: list[int]) -> tuple[dict[str, int], dict[str, int]]: ...
    def entries(self, names: list[str]) -> list[dict[str, Any]]: ...
    def take(self, entries: list[Any]) -> list[dict[str, Any]]: ...
    def bury(self, dead: dict[str, int]) -> Optional[dict[str, Any]]: ...
    def suspect(self, name: str, version: int, age: float) -> Optional[dict[str, Any]]: ...
    def suspicion(self, name: str) -> Optional[dict[str, Any]]: ...
    def heard_from(self, name: str) -> None: ...
    def member(self, name: Any) -> Optional[Any]: ...
    def size(self) -> int: ...


Send = Callable[[dict[str, Any]], dict[str, Any]]


class Sync:
    """Both sides of an exchange for one provider: its table and its news queue."""

    def __init__(self, table: Table, news: Optional[Broadcasts] = None, clock: Callable[[], float] = time.monotonic,
                 max_age: float = CLAIM_AGE):
        self.table, self.news, self.clock, self.max_age = table, news or Broadcasts(), clock, max_age

    # ---- news ---------------------------------------------------------------------------------

    def spread(self, message: dict[str, Any]) -> None:
        """Queue news (an ``alive`` entry, or a ``suspect`` with its ``since`` on our clock)."""
        self.news.put(str(message.get("alive", {}).get("Name") or message.get("suspect")), message)

    def _outgoing(self, extra: Optional[dict[str, Any]] = None) -> list[dict[str, Any]]:
        now = self.clock()
        out = [_rendered(m, now) for m in self.news.take(NEWS_BUDGET, self.table.size())]
        return out + ([_rendered(extra, now)] if extra is not None else [])

    def _incoming(self, news: list[dict[str, Any]]) -> None:
        alive = [m["alive"] for m in news if "alive" in m]
        # A newer version of a member held here is passed on; a member new here is not: the summaries
        # carry joins (a fleet forming would otherwise queue every member's entry on every member).
        known = {e.get("Name") for e in alive if isinstance(e, dict) and isinstance(e.get("Name"), str)
                 and self.table.version_of(e["Name"]) is not None}
        for entry in self.table.take(alive):
            if entry.get("Name") in known:
                self.spread({"alive": entry})
        for m in news:
            if "suspect" in m:  # dated at most max_age back: a victim always has about the timeout to refute
                raised = self.table.suspect(m["suspect"], m["version"], min(m["age"], self.max_age))
                if raised is not None:  # news here: ours to relay (or our refutation, if it named us)
                    self.spread(raised)

    def _buried(self, dead: dict[str, int]) -> None:
        """Members the other side holds dead: a suspicion here (the other side's word alone buries
        nobody); if it names us, our refutation."""
        for name, version in dead.items():
            news = (self.table.bury({name: version}) if name == self.table.name
                    else self.table.suspect(name, version, self.max_age))
            if news is not None:  # our newer version, or a suspicion new here: ours to spread
                self.spread(news)

    # ---- the side that opens ------------------------------------------------------------------

    def run(self, send: Send) -> None:
        """An exchange through ``send`` (one request and its answer each call; raises OSError or
        ValueError when the other side does not answer as a member)."""
        answer = parse(send({"root": self.table.root(), "news": self._outgoing()}), "answer")
        self._incoming(answer.get("news", []))
        if "buckets" not in answer or answer["root"] == self.table.root():
            return
        buckets = _differing(self.table.bucket_hashes(), answer["buckets"])
        live, dead = self.table.digests(buckets)
        answer = parse(send({"buckets": buckets, "digests": live, "dead": dead}), "answer")
        self._buried(answer.get("dead", {}))
        self.table.take(answer.get("entries", []))  # what the summaries found: already spreading that way
        if answer.get("want"):
            send({"entries": self.table.entries(answer["want"])})

    def ping(self, send: Send) -> None:
        """The opening alone: proof the other side answers, carrying news both ways."""
        answer = parse(send({"root": self.table.root(), "news": self._outgoing()}), "answer")
        self._incoming(answer.get("news", []))

    # ---- the side that answers ----------------------------------------------------------------

    def answer(self, message: Any, caller: Optional[str]) -> dict[str, Any]:
        """The answer to one step of another member's exchange (``caller``: its certificate's name).
        A caller that is not a live member here is answered only so that it can join: what it says
        of itself is taken, what it says of others is not, and it is sent nothing of the table."""
        request = parse(message, "request")
        member = bool(caller) and self.table.member(caller) is not None
        if member:
            self.table.heard_from(str(caller))
        if "root" in request:
            news = request.get("news", [])
            self._incoming(news if member else _own_news(news, caller))
            # A caller we suspect hears it now, so it can refute without waiting for the news to reach it.
            out: dict[str, Any] = {"root": self.table.root(),
                                   "news": (self._outgoing(self.table.suspicion(str(caller))) if member else [])}
            if out["root"] != request["root"]:
                out["buckets"] = self.table.bucket_hashes()
            return out
        if "digests" in request:
            if not member:  # a joining provider: asked for its own entry, told if it is buried here, nothing else
                if not caller or caller not in request["digests"] or self.table.version_of(caller) is not None:
                    return {"entries": [], "want": [], "dead": {}}
                buried = self.table.digests([bucket_of(caller)])[1].get(caller)
                return {"entries": [], "want": [caller], "dead": {} if buried is None else {caller: buried}}
            self._buried(request["dead"])
            live, dead = self.table.digests(request["buckets"])
            send, want = compare(live, request["digests"])
            return {"entries": self.table.entries(send), "want": want[:MAX_NAMES],
                    "dead": {n: v for n, v in dead.items() if request["digests"].get(n, 0) <= v}}
        entries = request.get("entries", [])
        self.table.take(entries if member else [e for e in entries if isinstance(e, dict) and e.get("Name") == caller])
        return {}


def _own_news(news: list[dict[str, Any]], caller: Optional[str]) -> list[dict[str, Any]]:
    """A non-member's news that is its own signed entry (a provider coming back with a newer version)."""
    return [m for m in news if "alive" in m and isinstance(m["alive"], dict) and m["alive"].get("Name") == caller]


def _differing(mine: list[str], theirs: Any) -> list[int]:
    return [i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b] if len(theirs) == BUCKETS else list(range(BUCKETS))


def _rendered(message: dict[str, Any], now: float) -> dict[str, Any]:
    """A suspicion goes out with how long ago it was raised, not our clock's reading."""
    if "since" not in message:
        return message
    return {"suspect": message["suspect"], "version": message["version"], "age": round(max(0.0, now - message["since"]), 3)}


# ---- what a message may hold ------------------------------------------------------------------

def parse(data: Any, where: str) -> dict[str, Any]:
    """A step's message checked field by field; InvalidInput names the field that is wrong.
    (Entries inside are checked by the table when it takes them.)"""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: must be an object", where)
    out: dict[str, Any] = {}
    if "root" in data:
        out["root"] = _hash(data["root"], f"{where}.root")
    if "news" in data:
        out["news"] = [_news(m, f"{where}.news[{i}]") for i, m in enumerate(_list(data["news"], f"{where}.news", 1024))]
    if "buckets" in data:
        items = _list(data["buckets"], f"{where}.buckets", BUCKETS)
        out["buckets"] = ([_hash(h, f"{where}.buckets[{i}]") for i, h in enumerate(items)] if "digests" not in data
                          else [_int(b, f"{where}.buckets[{i}]", 0, BUCKETS - 1) for i, b in enumerate(items)])
    for key in ("digests", "dead"):
        if key in data:
            out[key] = _versions(data[key], f"{where}.{key}")
    if "digests" in data:
        out.setdefault("dead", {})
        out.setdefault("buckets", [])
    if "entries" in data:
        out["entries"] = _list(data["entries"], f"{where}.entries", MAX_NAMES)
    if "want" in data:
        out["want"] = [_name(n, f"{where}.want[{i}]") for i, n in enumerate(_list(data["want"], f"{where}.want", MAX_NAMES))]
    return out


def _list(value: Any, field: str, most: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > most:
        raise InvalidInput(f"{field}: must be a list of at most {most} items", field)
    return value


def _hash(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) != 16 or any(c not in "0123456789abcdef" for c in value):
        raise InvalidInput(f"{field}: must be 16 lowercase hex digits", field)
    return value


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field}: must be an integer from {low} to {high}", field)
    return value


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise InvalidInput(f"{field}: must be a member's name (1 to 64 characters)", field)
    return value


def _versions(value: Any, field: str) -> dict[str, int]:
    if not isinstance(value, dict) or len(value) > MAX_NAMES:
        raise InvalidInput(f"{field}: must be an object of at most {MAX_NAMES} names and versions", field)
    return {_name(n, f"{field}.{n}"[:200]): _int(v, f"{field}.{n}"[:200], 1, 2**63 - 1) for n, v in value.items()}


def _news(value: Any, field: str) -> dict[str, Any]:
    if isinstance(value, dict) and set(value) == {"alive"}:
        return value
    if isinstance(value, dict) and set(value) == {"suspect", "version", "age"}:
        age = value["age"]
        if isinstance(age, bool) or not isinstance(age, (int, float)) or not 0 <= age <= 1e9:
            raise InvalidInput(f"{field}.age: must be a number of seconds from 0", f"{field}.age")
        return {"suspect": _name(value["suspect"], f"{field}.suspect"),
                "version": _int(value["version"], f"{field}.version", 1, 2**63 - 1), "age": float(age)}
    raise InvalidInput(f"{field}: must be {{alive: entry}} or {{suspect, version, age}}", field)

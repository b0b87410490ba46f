"""One budget across the fleet (issue 35): what each provider's ledger counted for each client in
a month, as a counter set the provider signs with its membership key, and the fleet's merge.

A set is a grow-only counter's share (a G-Counter, as CRDTs name it): the provider owns it, and
it holds totals, never increments, so taking it twice, or again after a restart, counts nothing
twice. A member takes a set only when it is signed by the key pinned for its provider (the key
of that provider's signed, mutually verified fleet entry; kept once seen, so the spend of a
provider that went offline stays counted), and keeps per (provider, month, client, resource)
the highest value any valid set gave: an older set replayed, or a provider whose ledger went
back, lowers nothing. The newest set of each provider is what is passed on, its signature with
it, so a third member checks it itself; nobody can lower, forge or rewrite another's counters.

Pure: no file, no clock, no network (spend.py drives it).
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dockpool.errors import InvalidInput
from dockpool.validation import validate_name

from ..packages import BUDGETS

Months = dict[str, dict[str, dict[str, float]]]  # month ("2026-12") -> client -> resource -> amount
# What a budget bounds, and the credits charged for it at the price of the provider where it ran
RESOURCES = tuple(sorted({total for total, _unit in BUDGETS.values()} | {"credits"}))
MAX_CLIENTS = 1024  # clients in one month of a set (about 110 bytes each): a set stays well under 1 MiB
MAX_MONTHS = 2  # this month and the one before (a clock a little off at the turn of a month)
MAX_VERSION = 2**63 - 1
MAX_DIGEST = 4096  # providers named in one digest, sets in one request
ANSWER_BYTES = 256 * 1024  # sets in one answer at most (about 2,000 clients' month); the rest next round
SET_FIELDS = frozenset({"provider", "key", "version", "months", "signature"})


def month_of(moment: float) -> str:
    """The calendar month (UTC) of ``moment``, as budgets run over it: ``2026-12``."""
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m")


def month_before(month: str) -> str:
    year, number = int(month[:4]), int(month[5:])
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


def signed_bytes(provider: str, key: str, version: int, months: Months) -> bytes:
    """What a set's signature covers: all of it but the signature, in one canonical spelling."""
    return json.dumps(["dockpool-spend/1", provider, key, version, months], sort_keys=True,
                      separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class CounterSigner:
    """This provider's membership key (the raw Ed25519 key membership.Signer keeps, 0600), used
    to sign its counter sets: the key its fleet entry already names, so nothing new is pinned."""

    def __init__(self, key_file: str) -> None:
        with open(key_file, "rb") as handle:
            self._key = Ed25519PrivateKey.from_private_bytes(handle.read())
        self.public = _b64(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, provider: str, version: int, months: Months) -> dict[str, Any]:
        signature = self._key.sign(signed_bytes(provider, self.public, version, months))
        return {"provider": provider, "key": self.public, "version": version, "months": months,
                "signature": _b64(signature)}


def _amount(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{where}: a finite amount, zero or more", where)
    return value


def check_set(raw: Any, where: str) -> dict[str, Any]:
    """A counter set's shape and bounds (not its signature), or InvalidInput naming the field."""
    if not isinstance(raw, dict) or set(raw) != SET_FIELDS:
        raise InvalidInput(f"{where}: a counter set is {{{', '.join(sorted(SET_FIELDS))}}}", where)
    validate_name(raw["provider"], f"{where}.provider")
    for name in ("key", "signature"):
        if not isinstance(raw[name], str) or len(raw[name]) > 100:
            raise InvalidInput(f"{where}.{name}: base64, at most 100 characters", f"{where}.{name}")
    version = raw["version"]
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version <= MAX_VERSION:
        raise InvalidInput(f"{where}.version: a whole number from 1 to {MAX_VERSION}", f"{where}.version")
    months = raw["months"]
    if not isinstance(months, dict) or len(months) > MAX_MONTHS:
        raise InvalidInput(f"{where}.months: at most {MAX_MONTHS} months, each YYYY-MM", f"{where}.months")
    for month, clients in months.items():
        at = f"{where}.months.{month}"
        if not isinstance(month, str) or len(month) != 7 or not (month[:4].isdigit() and month[4] == "-"
                                                                 and month[5:].isdigit() and 1 <= int(month[5:]) <= 12):
            raise InvalidInput(f"{where}.months: {month!r} is not a month (YYYY-MM)", f"{where}.months")
        if not isinstance(clients, dict) or len(clients) > MAX_CLIENTS:
            raise InvalidInput(f"{at}: at most {MAX_CLIENTS} clients", at)
        for client, used in clients.items():
            validate_name(client, f"{at} (a client)")
            if not isinstance(used, dict) or set(used) - set(RESOURCES):
                raise InvalidInput(f"{at}.{client}: any of {', '.join(RESOURCES)}", f"{at}.{client}")
            for resource, value in used.items():
                _amount(value, f"{at}.{client}.{resource}")
    return raw


def signature_ok(counters: dict[str, Any], key: str) -> bool:
    """Signed by ``key`` (the one pinned for its provider), over all it says."""
    if counters["key"] != key:
        return False
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(key, validate=True))
        public.verify(base64.b64decode(counters["signature"], validate=True),
                      signed_bytes(counters["provider"], key, counters["version"], counters["months"]))
        return True
    except (InvalidSignature, ValueError):
        return False


def _raised(peaks: Months, months: Months) -> bool:
    """Raise ``peaks`` to ``months`` wherever they are higher; whether anything rose."""
    rose = False
    for month, clients in months.items():
        for client, used in clients.items():
            held = peaks.setdefault(month, {}).setdefault(client, {})
            for resource, value in used.items():
                if value > held.get(resource, 0.0):
                    held[resource] = value
                    rose = True
    return rose


@dataclass
class SpendBook:
    """What this member knows of the fleet's spend: the newest valid set of each provider (what it
    passes on), the highest value each counter ever had in a valid set (what budgets sum), and the
    key pinned for each provider. ``me`` is this provider, whose set comes from its own ledger."""

    me: str
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    peaks: dict[str, Months] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict)
    own_seen: int = 0  # the newest version of this provider's own set that came back from the fleet

    def take(self, raw: Any, where: str, member_key: Optional[str]) -> str:
        """Take a set another member sent: ``taken`` (newer), ``held`` (this version is here
        already). ``member_key``: the key of its provider's live signed entry (None: not a live
        member; then the key pinned before). Refused, naming the field: a bad shape, a provider
        with no known key, a signature that is not its provider's, an older version (a replay)."""
        counters = check_set(raw, where)
        provider = counters["provider"]
        key = member_key or self.pins.get(provider)
        if key is None:
            raise InvalidInput(f"{where}.provider: {provider!r} is not a member this provider knows, so its "
                               "signature cannot be checked", f"{where}.provider")
        if not signature_ok(counters, key):
            raise InvalidInput(f"{where}.signature: not signed by {provider}'s membership key: counters are "
                               "taken only as their own provider signed them", f"{where}.signature")
        if provider == self.me:  # ours, back from the fleet: only the version matters (the next one goes above it)
            self.own_seen = max(self.own_seen, counters["version"])
            return "held"
        if self.pins.get(provider) != key:  # first seen, or the member now holds another key
            self.pins[provider] = key
            self.latest.pop(provider, None)  # the old key's set would be refused by whoever pins the new one
        held = self.latest.get(provider)
        if held is not None and counters["version"] <= held["version"]:
            if counters["version"] == held["version"] and counters["signature"] == held["signature"]:
                return "held"
            raise InvalidInput(f"{where}.version: {provider}'s version {counters['version']} is not newer than "
                               f"the {held['version']} held: a replayed or older set changes nothing",
                               f"{where}.version")
        self.latest[provider] = counters
        _raised(self.peaks.setdefault(provider, {}), counters["months"])
        return "taken"

    def own(self, signer: CounterSigner, months: Months, clock_ms: int) -> bool:
        """Sign this provider's counters anew when they changed (or none is signed yet), with a
        version above every one it signed or saw; whether a new set was signed."""
        held = self.latest.get(self.me)
        if held is not None and held["months"] == months and held["key"] == signer.public:
            return False
        version = max((held or {}).get("version", 0) + 1, self.own_seen + 1, clock_ms)
        self.latest[self.me] = signer.sign(self.me, version, months)
        self.pins[self.me] = signer.public
        self.peaks[self.me] = {m: {c: dict(u) for c, u in clients.items()} for m, clients in months.items()}
        return True

    def digest(self) -> dict[str, int]:
        """Provider -> the version held: what a member sends to learn what it lacks."""
        return {provider: counters["version"] for provider, counters in self.latest.items()}

    def newer_than(self, digest: dict[str, int], most_bytes: int) -> list[dict[str, Any]]:
        """The sets newer than ``digest`` says the asker holds, up to about ``most_bytes`` of JSON
        (the rest in a later round), this provider's own first."""
        wanted = sorted((p for p, c in self.latest.items() if c["version"] > digest.get(p, 0)),
                        key=lambda p: (p != self.me, p))
        out: list[dict[str, Any]] = []
        size = 0
        for provider in wanted:
            length = len(json.dumps(self.latest[provider], separators=(",", ":")))
            if out and size + length > most_bytes:
                break
            out.append(self.latest[provider])
            size += length
        return out

    # ---- one exchange: a digest's hash; when it differs, the digests and what each lacks --------

    def digest_hash(self) -> str:
        """The digest in 32 hex digits: what a quiet round sends, instead of a line per provider."""
        return hashlib.sha256(json.dumps(self.digest(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]

    def ask(self) -> dict[str, Any]:
        """What a round sends first: the hash of this member's digest."""
        return {"hash": self.digest_hash()}

    def answer(self, request: Any, key_of: Callable[[str], Optional[str]]) -> dict[str, Any]:
        """A member's ``{hash}``: whether the digests are the same, and if not this one's digest.
        A member's ``{digest, sets}``: take its sets, answer the newer sets it lacks and this
        digest. ``key_of``: the live member's pinned key by name. Every set it sent refused (and
        none besides): InvalidInput naming the first one's field and why."""
        if isinstance(request, dict) and set(request) == {"hash"}:
            if not isinstance(request["hash"], str) or len(request["hash"]) > 64:
                raise InvalidInput("hash: the digest's hash, at most 64 characters", "hash")
            same = request["hash"] == self.digest_hash()
            return {"provider": self.me, "same": same, **({} if same else {"digest": self.digest()})}
        digest, sets = check_request(request)
        taken, refused = self.take_all(sets, key_of)
        if refused and len(refused) == len(sets):
            raise InvalidInput(refused[0]["problem"], refused[0]["field"], {"refused": refused[:16]})
        return {"provider": self.me, "sets": self.newer_than(digest, ANSWER_BYTES), "digest": self.digest(),
                "taken": taken, "refused": refused[:16]}

    def follow_up(self, answer: Any, key_of: Callable[[str], Optional[str]]) -> Optional[dict[str, Any]]:
        """What to send next on an answer, or None: nothing after ``same``; after another digest,
        this digest and the sets it lacks; after sets, they are taken and what it still lacks is pushed."""
        if not isinstance(answer, dict):
            raise InvalidInput("the answer is {same, digest} or {sets, digest}", "answer")
        if answer.get("same") is True:
            return None
        theirs = answer.get("digest")
        theirs = {p: v for p, v in theirs.items() if isinstance(v, int)} if isinstance(theirs, dict) else {}
        sets = answer.get("sets")
        if sets is None:
            return {"digest": self.digest(), "sets": self.newer_than(theirs, ANSWER_BYTES)}
        self.take_all(list(sets)[:MAX_DIGEST] if isinstance(sets, list) else [], key_of)
        missing = self.newer_than(theirs, ANSWER_BYTES)
        return {"digest": self.digest(), "sets": missing} if missing else None

    def take_all(self, sets: list[Any], key_of: Callable[[str], Optional[str]]) -> tuple[int, list[dict[str, str]]]:
        """Take each set: how many were new, and each refused one's field and why."""
        taken, refused = 0, []
        for index, raw in enumerate(sets):
            provider = raw.get("provider") if isinstance(raw, dict) else None
            try:
                taken += self.take(raw, f"sets[{index}]", key_of(provider) if isinstance(provider, str) else None) == "taken"
            except InvalidInput as exc:
                refused.append({"field": exc.field or f"sets[{index}]", "problem": exc.message})
        return taken, refused

    # ---- what budgets read ---------------------------------------------------------------------

    def spent(self, client: str, month: str, skip: str = "") -> dict[str, dict[str, float]]:
        """Provider -> what ``client`` used there in ``month`` (the highest counted), but ``skip``."""
        return {provider: dict(months[month][client]) for provider, months in sorted(self.peaks.items())
                if provider != skip and client in months.get(month, {})}

    def others(self, client: str, month: str) -> dict[str, float]:
        """What ``client`` used in ``month`` on the other providers, summed per resource."""
        total = dict.fromkeys(RESOURCES, 0.0)
        for used in self.spent(client, month, skip=self.me).values():
            for resource, value in used.items():
                total[resource] += value
        return total

    def prune(self, month: str) -> None:
        """Forget months before the one before ``month`` (no budget reads them)."""
        keep = {month, month_before(month)}
        for months in self.peaks.values():
            for old in [m for m in months if m not in keep]:
                del months[old]

    def dump(self) -> dict[str, Any]:
        return {"me": self.me, "sets": list(self.latest.values()), "peaks": self.peaks, "pins": self.pins,
                "own_seen": self.own_seen}

    @classmethod
    def load(cls, me: str, data: Any) -> "SpendBook":
        """A book from ``dump()``; each set is checked again against its pinned key. Raises
        ValueError or InvalidInput for a file that is not one."""
        if not isinstance(data, dict) or data.get("me") != me:
            raise ValueError(f"not the spend book of {me}")
        book = cls(me, pins={str(p): str(k) for p, k in dict(data["pins"]).items()},
                   own_seen=int(data.get("own_seen", 0)))
        for index, raw in enumerate(data["sets"]):
            counters = check_set(raw, f"sets[{index}]")
            if signature_ok(counters, book.pins.get(counters["provider"], "")):
                book.latest[counters["provider"]] = counters
        for provider, months in dict(data["peaks"]).items():
            validate_name(provider, "peaks")
            check_set({"provider": provider, "key": "", "version": 1, "months": months, "signature": ""}, "peaks")
            book.peaks[provider] = months
        for provider, counters in book.latest.items():
            _raised(book.peaks.setdefault(provider, {}), counters["months"])
        return book


def check_request(body: Any) -> tuple[dict[str, int], list[Any]]:
    """A member's ``{digest, sets}``, checked (each set is checked as it is taken)."""
    if not isinstance(body, dict) or set(body) != {"digest", "sets"}:
        raise InvalidInput("the body is {digest, sets}: the provider -> version held, and sets to take", "body")
    digest, sets = body["digest"], body["sets"]
    if not isinstance(digest, dict) or len(digest) > MAX_DIGEST:
        raise InvalidInput(f"digest: provider -> version, at most {MAX_DIGEST} providers", "digest")
    for provider, version in digest.items():
        validate_name(provider, "digest (a provider)")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInput(f"digest.{provider}: a version, a whole number", f"digest.{provider}")
    if not isinstance(sets, list) or len(sets) > MAX_DIGEST:
        raise InvalidInput(f"sets: a list of counter sets, at most {MAX_DIGEST}", "sets")
    return digest, sets

"""The usage ledger (issue 25): what every instance used, in a SQLite database on the provider.

Each metering pass gives every instance's cumulative kernel counters (CPU time, bytes read and
written, bytes in and out) and its memory and GPUs in use now; the ledger keeps the last reading
per instance and writes one row per instance and pass with what was used since (memory and GPU
time integrated over the time between passes). So a row never
depends on the clock being right: a counter that went down (the instance or the engine
restarted: a new cgroup starts at zero, and ``started`` changes) counts from zero, and memory
is integrated over the time between passes only when that time is plausible (a clock stepped
back counts none; a gap longer than ``MAX_GAP_S``, the host being down, counts that much).
A pass that cannot be written (the disk is full) changes nothing: the next one counts from
the reading before, so counters lose nothing.

WAL mode, one transaction per pass, a schema version in ``meta`` with a migration per
version; rows older than a day are rolled up into one row per instance and hour. A file that
is not a readable ledger is never reset: opening it fails naming it and the last backup.
"""
from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .errors import DockpoolError

SCHEMA_VERSION = 3
MAX_GAP_S = 300.0  # the most time one pass integrates memory over (the watchdog runs every 30 s)
RAW_FOR_S = 86400.0  # rows younger than this stay per pass; older ones are rolled up by hour
DAY_S = 86400  # the daily totals' days: UTC, as the months budgets run over
COUNTERS = ("cpu_ns", "read_bytes", "write_bytes", "rx_bytes", "tx_bytes")  # the kernel's, cumulative
USED = COUNTERS + ("gpu_ns",)  # a row's sums: the counters' increase, and GPU time integrated from samples


def _columns(names: tuple[str, ...]) -> str:
    return ", ".join(f"{c} INTEGER NOT NULL" for c in names)


_KERNEL_1 = ("cpu_ns", "read_bytes", "write_bytes", "rx_bytes", "tx_bytes")  # migrations are history: never COUNTERS
_USED_1 = _KERNEL_1 + ("gpu_ns",)
_SUMS_1 = ("seconds", "memory_byte_seconds") + _USED_1
MIGRATIONS: dict[int, tuple[str, ...]] = {  # version -> statements that make it from the one before
    1: ("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE readings (instance_id TEXT PRIMARY KEY, started TEXT NOT NULL, at REAL NOT NULL, "
        + _columns(_USED_1) + ")",
        "CREATE TABLE usage (instance_id TEXT NOT NULL, owner TEXT NOT NULL, name TEXT NOT NULL, "
        "start REAL NOT NULL, seconds REAL NOT NULL, hourly INTEGER NOT NULL DEFAULT 0, "
        "memory_byte_seconds REAL NOT NULL, " + _columns(_USED_1) + ")",
        "CREATE INDEX usage_owner_start ON usage (owner, start)",
        "CREATE INDEX usage_instance_start ON usage (instance_id, start)",
        "CREATE INDEX usage_raw_start ON usage (hourly, start)"),
    # GPU time became a sampled gauge integrated per pass (NVML keeps no running process's total),
    # so a last reading holds no GPU counter; the readings are kept
    2: ("CREATE TABLE readings_2 (instance_id TEXT PRIMARY KEY, started TEXT NOT NULL, at REAL NOT NULL, "
        + _columns(_KERNEL_1) + ")",
        f"INSERT INTO readings_2 SELECT instance_id, started, at, {', '.join(_KERNEL_1)} FROM readings",
        "DROP TABLE readings",
        "ALTER TABLE readings_2 RENAME TO readings"),
    # Daily totals per instance, kept up to date by each pass, so a month's report sums a row a
    # day (days by the start of each row, as a range selects rows); and the last pass's time,
    # after which the day's total is whole
    3: ("CREATE TABLE daily (instance_id TEXT NOT NULL, owner TEXT NOT NULL, name TEXT NOT NULL, day INTEGER NOT NULL, "
        "seconds REAL NOT NULL, memory_byte_seconds REAL NOT NULL, " + _columns(_USED_1) + ", PRIMARY KEY (instance_id, day))",
        "CREATE INDEX daily_owner_day ON daily (owner, day)",
        "CREATE INDEX usage_start ON usage (start)",
        f"INSERT INTO daily SELECT instance_id, owner, name, CAST(start / {DAY_S} AS INTEGER), "
        f"{', '.join(f'SUM({c})' for c in _SUMS_1)} FROM usage GROUP BY instance_id, CAST(start / {DAY_S} AS INTEGER)",
        "INSERT INTO meta SELECT 'last_pass', COALESCE(MAX(start + seconds), 0) FROM usage"),
}


_SUMS = ("seconds", "memory_byte_seconds") + USED  # what a row and a day's total add up
_ADD_ROW = (f"INSERT INTO usage (instance_id, owner, name, start, {', '.join(_SUMS)}) "
            f"VALUES (?, ?, ?, ?, {', '.join('?' * len(_SUMS))})")
_ADD_TO_DAY = (f"INSERT INTO daily (instance_id, owner, name, day, {', '.join(_SUMS)}) VALUES (?, ?, ?, ?, "
               f"{', '.join('?' * len(_SUMS))}) ON CONFLICT (instance_id, day) DO UPDATE SET "
               + ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS))


class LedgerUnreadable(DockpoolError):
    """The ledger's file is damaged or from a newer dockpool: refused, never reset."""


@dataclass(frozen=True)
class Reading:
    """One instance's counters at one pass: cumulative since ``started`` (its cgroup, which
    changes when it restarts), and its memory and GPUs in use now."""

    instance_id: str
    owner: str
    name: str
    started: str
    memory_bytes: int
    cpu_ns: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    gpu_busy: float = 0.0  # GPUs' worth busy now (NVML's samples, gpus.busy_by_process)


class Ledger:
    def __init__(self, path: str, clock: Callable[[], float] = time.time, reader: bool = False) -> None:
        """Open (and make or migrate) the ledger; ``reader``: only read it (and take an older one
        forward), as the API does, the watchdog being its one writer of usage."""
        self.path, self.clock = path, clock
        self.backup_path = path + ".backup"
        try:
            if reader:  # read-write but never written: a WAL reader makes the -shm index if it is missing
                self.db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=30,
                                          check_same_thread=False)
            else:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                self.db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
            [(check,)] = self.db.execute("PRAGMA quick_check").fetchall()[:1] or [("empty answer",)]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            self._migrate()  # the API too: a ledger the watchdog has not taken forward yet (its next pass would)
            if not reader:
                _share(path)
        except sqlite3.DatabaseError as exc:
            raise LedgerUnreadable(
                f"the usage ledger {path} cannot be read ({exc}); it was left as it is. Move it aside and copy the "
                f"last backup ({self.backup_path}{'' if os.path.exists(self.backup_path) else ', none yet'}) in "
                "its place, or move it aside to start an empty ledger", "ledger") from exc

    def _tables(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _version(self, tables: set[str]) -> int:
        version = 0
        if "meta" in tables:
            version = int(self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version} is newer than this dockpool's {SCHEMA_VERSION}")
        return version

    def _migrate(self) -> None:
        """One version at a time, each in a transaction that reads the version first: the API and
        the watchdog may both open an older ledger at once."""
        while True:
            with self._transaction():
                version = self._version(self._tables())
                if version >= SCHEMA_VERSION:
                    return
                for statement in MIGRATIONS[version + 1]:
                    self.db.execute(statement)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(version + 1),))

    def _transaction(self) -> Any:
        return _Transaction(self.db)

    def record(self, readings: list[Reading]) -> int:
        """Write one pass: a row per instance of what it used since its last reading. Returns the
        rows written. Raises sqlite3.OperationalError (disk full) with nothing changed."""
        now = self.clock()
        written = 0
        with self._transaction():
            for reading in readings:
                before = self.db.execute(f"SELECT started, at, {', '.join(COUNTERS)} FROM readings "
                                         "WHERE instance_id = ?", (reading.instance_id,)).fetchone()
                counters = [getattr(reading, c) for c in COUNTERS]
                self.db.execute(f"INSERT OR REPLACE INTO readings VALUES (?, ?, ?, {', '.join('?' * len(COUNTERS))})",
                                (reading.instance_id, reading.started, now, *counters))
                if before is None:
                    continue  # the first reading: what it used before is not known to be this ledger's
                restarted = before[0] != reading.started
                used = [value if restarted or value < old else value - old for value, old in zip(counters, before[2:])]
                elapsed = now - before[1]
                seconds = min(elapsed, MAX_GAP_S) if elapsed > 0 else 0.0
                sums = (seconds, reading.memory_bytes * seconds, *used, round(reading.gpu_busy * seconds * 1e9))
                self.db.execute(_ADD_ROW, (reading.instance_id, reading.owner, reading.name, now - seconds, *sums))
                self.db.execute(_ADD_TO_DAY, (reading.instance_id, reading.owner, reading.name,
                                              int((now - seconds) // DAY_S), *sums))
                written += 1
            self.db.execute("UPDATE meta SET value = MAX(CAST(value AS REAL), ?) WHERE key = 'last_pass'", (now,))
        return written

    def charge(self, instance_id: str, owner: str, name: str, cpu_ns: int = 0, tx_bytes: int = 0) -> None:
        """Add work the provider did for an instance outside its cgroup (a replica refresh: its
        CPU time, the bytes it shipped) as a row of no duration, and to its day's total."""
        now = self.clock()
        used = {**dict.fromkeys(USED, 0), "cpu_ns": int(cpu_ns), "tx_bytes": int(tx_bytes)}
        sums = (0.0, 0.0, *(used[c] for c in USED))
        with self._transaction():
            self.db.execute(_ADD_ROW, (instance_id, owner, name, now, *sums))
            self.db.execute(_ADD_TO_DAY, (instance_id, owner, name, int(now // DAY_S), *sums))

    def known(self) -> set[str]:
        """The instances with a last reading."""
        return {row[0] for row in self.db.execute("SELECT instance_id FROM readings")}

    def forget(self, instance_ids: set[str]) -> None:
        """The instances are gone: their last readings go (their rows stay)."""
        with self._transaction():
            self.db.executemany("DELETE FROM readings WHERE instance_id = ?", [(i,) for i in instance_ids])

    def roll_up(self) -> int:
        """Merge the per-pass rows older than a day into one row per instance and hour, and back the
        ledger up when it did. Returns the rows merged."""
        cutoff = (self.clock() - RAW_FOR_S) // 3600 * 3600  # whole hours only
        columns = _SUMS
        hour = "CAST(start / 3600 AS INTEGER)"
        with self._transaction():
            merged = self.db.execute("SELECT COUNT(*) FROM usage WHERE hourly = 0 AND start < ?", (cutoff,)).fetchone()[0]
            self.db.execute(f"INSERT INTO usage (instance_id, owner, name, start, hourly, {', '.join(columns)}) "
                            f"SELECT instance_id, owner, name, {hour} * 3600, 1, {', '.join(f'SUM({c})' for c in columns)} "
                            f"FROM usage WHERE hourly = 0 AND start < ? GROUP BY instance_id, owner, name, {hour}",
                            (cutoff,))
            self.db.execute("DELETE FROM usage WHERE hourly = 0 AND start < ?", (cutoff,))
        if merged:  # about once an hour
            self.backup()
        return merged

    def backup(self) -> str:
        """A consistent copy of the ledger beside it (written whole, then renamed)."""
        partial = self.backup_path + ".partial"
        target = sqlite3.connect(partial)
        try:
            self.db.backup(target)
        finally:
            target.close()
        os.replace(partial, self.backup_path)
        return self.backup_path

    def usage(self, owner: Optional[str] = None, since: float = 0.0, until: Optional[float] = None) -> list[dict[str, Any]]:
        """Per instance (of ``owner``, or every one), what it used from ``since`` to ``until``: the
        daily totals of the whole days in the range (and of the last one, when the range ends
        after the last pass), and the rows of the part days at its ends."""
        until = float("inf") if until is None else until
        [(last_pass,)] = self.db.execute("SELECT CAST(value AS REAL) FROM meta WHERE key = 'last_pass'").fetchall()
        first_day = min(-(-since // DAY_S), until // DAY_S)  # the first whole day in the range
        if first_day * DAY_S >= until:
            end_day = first_day  # no whole day: rows only
        elif until > last_pass:
            end_day = max(first_day, last_pass // DAY_S + 1)  # every row is before ``until``: each day is whole
        else:
            end_day = until // DAY_S
        parts = [("daily", "day >= ? AND day < ?", (first_day, end_day)),
                 ("usage", "start >= ? AND start < ?", (since, min(until, first_day * DAY_S))),
                 ("usage", "start >= ? AND start < ?", (max(since, end_day * DAY_S), until))]
        mine = "" if owner is None else " AND owner = ?"
        query = " UNION ALL ".join(f"SELECT owner, instance_id, name, {', '.join(_SUMS)} FROM {table} WHERE {where}{mine}"
                                   for table, where, _values in parts)
        values = [v for _table, _where, bounds in parts for v in (*bounds, *([owner] if owner is not None else []))]
        rows = self.db.execute(f"SELECT owner, instance_id, name, {', '.join(f'SUM({c})' for c in _SUMS)} FROM "
                               f"({query}) GROUP BY owner, instance_id ORDER BY owner, name", values).fetchall()
        return [{"owner": r[0], "instance_id": r[1], "name": r[2], "seconds": r[3],
                 "cpu_seconds": r[5] / 1e9, "memory_gib_hours": r[4] / 1024**3 / 3600,
                 "read_bytes": r[6], "write_bytes": r[7], "rx_bytes": r[8], "tx_bytes": r[9], "gpu_seconds": r[10] / 1e9}
                for r in rows]

    def close(self) -> None:
        self.db.close()


def _share(path: str) -> None:
    """The watchdog (root) writes the ledger, the API (the core's owner) reads it: a WAL reader
    writes the -shm index too, so the files go to the group of the folder they are in, 0660."""
    group = os.stat(os.path.dirname(os.path.abspath(path))).st_gid
    for name in (path, f"{path}-wal", f"{path}-shm"):
        if os.path.exists(name):
            os.chown(name, -1, group)
            os.chmod(name, 0o660)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error: a pass is written whole or not at all."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: Any, *_rest: Any) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")

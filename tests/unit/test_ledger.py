"""The usage ledger (issue 25, part 1) on a real SQLite file: deltas of cumulative counters,
restarts and counter resets, clock steps, a full disk, a damaged file, roll-up by hour."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess

import pytest

from dockpool.ledger import MAX_GAP_S, MIGRATIONS, SCHEMA_VERSION, Ledger, LedgerUnreadable, Reading

GIB = 1024**3


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def reading(cpu_s: float, rx: int = 0, started: str = "t0", memory: int = GIB, name: str = "alice-p-1") -> Reading:
    return Reading(f"id-{name}", name.split("-")[0], name, started, memory, cpu_ns=int(cpu_s * 1e9), rx_bytes=rx)


def test_a_pass_records_what_was_used_since_the_last_and_survives_a_reopen(tmp_path):
    clock = Clock()
    ledger = Ledger(str(tmp_path / "usage.db"), clock)
    assert ledger.record([reading(100.0, rx=5000)]) == 0  # the first reading: nothing known to be ours yet
    clock.now += 30
    assert ledger.record([reading(160.0, rx=9000)]) == 1
    ledger.close()
    again = Ledger(str(tmp_path / "usage.db"), clock)  # the API restarted
    clock.now += 30
    again.record([reading(175.0, rx=10000, memory=2 * GIB)])
    [row] = again.usage("alice")
    assert row["cpu_seconds"] == pytest.approx(75.0) and row["rx_bytes"] == 5000 and row["seconds"] == 60
    assert row["memory_gib_hours"] == pytest.approx((30 * 1 + 30 * 2) / 3600)
    assert again.usage("bob") == []
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader = Ledger(str(tmp_path / "usage.db"), clock, reader=True)  # the API, while the watchdog writes
    assert reader.usage("alice") == again.usage("alice")
    assert oct((tmp_path / "usage.db").stat().st_mode & 0o777) == "0o660"  # its folder's group reads it


def test_a_restart_or_a_counter_reset_counts_from_zero_and_clock_steps_count_no_time(tmp_path):
    clock = Clock()
    ledger = Ledger(str(tmp_path / "usage.db"), clock)
    ledger.record([reading(500.0)])
    clock.now += 30
    ledger.record([reading(20.0, started="t1")])  # restarted: a new cgroup, counting from zero
    clock.now += 30
    ledger.record([reading(25.0, started="t1")])
    clock.now += 30
    ledger.record([reading(3.0, started="t1")])  # the engine restarted under it: a counter went down
    assert ledger.usage()[0]["cpu_seconds"] == pytest.approx(20 + 5 + 3)
    clock.now -= 3600  # the clock stepped back an hour: CPU still counts, memory over no time
    ledger.record([reading(4.0, started="t1")])
    clock.now += 3600 * 5  # and forward five hours: memory over at most MAX_GAP_S
    ledger.record([reading(5.0, started="t1")])
    [row] = ledger.usage()
    assert row["cpu_seconds"] == pytest.approx(30.0)
    assert row["seconds"] == pytest.approx(90 + 0 + MAX_GAP_S)


def test_a_full_disk_loses_no_counted_use(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        clock = Clock()
        ledger = Ledger(str(disk / "usage.db"), clock)
        ledger.record([reading(10.0, name=f"alice-p-{n}") for n in range(50)])
        with open(disk / "filler", "wb") as handle:  # another writer takes the room that is left
            os.posix_fallocate(handle.fileno(), 0, shutil.disk_usage(disk).free)
        for n in range(400):
            clock.now += 30
            try:
                ledger.record([reading(10.0 + n + 1, name=f"alice-p-{m}") for m in range(50)])
            except sqlite3.OperationalError as exc:
                assert "full" in str(exc), exc
                break
        else:
            pytest.fail("the ledger never filled the disk")
        counted = sum(r["cpu_seconds"] for r in ledger.usage())
        (disk / "filler").unlink()
        clock.now += 30
        ledger.record([reading(10.0 + n + 1, name=f"alice-p-{m}") for m in range(50)])  # the same readings, later
        assert counted == pytest.approx(50 * n)  # the pass that failed wrote nothing
        assert sum(r["cpu_seconds"] for r in ledger.usage()) == pytest.approx(50 * (n + 1))  # and lost nothing
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_damaged_ledger_is_refused_naming_its_backup_and_left_as_it_is(tmp_path):
    path = tmp_path / "usage.db"
    clock = Clock()
    ledger = Ledger(str(path), clock)
    ledger.record([reading(1.0)])
    assert ledger.backup() == f"{path}.backup"
    ledger.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    damaged = path.read_bytes()[:100] + b"\xff" * 4096
    path.write_bytes(damaged)
    with pytest.raises(LedgerUnreadable) as refused:
        Ledger(str(path), clock)
    assert str(path) in refused.value.message and f"{path}.backup" in refused.value.message
    assert path.read_bytes() == damaged  # never reset
    restored = Ledger(f"{path}.backup", clock)  # the backup is a whole ledger
    assert restored.db.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 1


def test_gpu_time_is_what_was_busy_integrated_over_the_time_between_passes(tmp_path):
    clock = Clock()
    ledger = Ledger(str(tmp_path / "usage.db"), clock)
    busy = [0.0, 1.5, 0.25, 1.0]  # GPUs' worth busy at each pass (NVML's samples)
    for step, gpus in enumerate(busy):
        ledger.record([Reading("id-1", "alice", "alice-p-1", "t0", GIB, cpu_ns=step, gpu_busy=gpus)])
        clock.now += 30
    assert ledger.usage()[0]["gpu_seconds"] == pytest.approx(30 * (1.5 + 0.25 + 1.0))
    clock.now -= 3600  # a clock stepped back integrates no GPU time, as no memory
    ledger.record([Reading("id-1", "alice", "alice-p-1", "t0", GIB, gpu_busy=2.0)])
    assert ledger.usage()[0]["gpu_seconds"] == pytest.approx(82.5)


def test_a_version_1_ledger_is_migrated_keeping_its_rows_and_last_readings(tmp_path):
    path = str(tmp_path / "usage.db")
    old = sqlite3.connect(path, isolation_level=None)  # what the first dockpool with a ledger made
    for statement in MIGRATIONS[1]:
        old.execute(statement)
    old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    old.execute("INSERT INTO readings VALUES ('id-alice-p-1', 't0', 1800000000.0, 100000000000, 0, 0, 5000, 0, 0)")
    old.execute("INSERT INTO usage VALUES ('id-alice-p-1', 'alice', 'alice-p-1', 1799999970.0, 30.0, 0, 0.0, "
                "40000000000, 0, 0, 1000, 0, 7000000000)")
    old.close()
    clock = Clock(1_800_000_030.0)
    ledger = Ledger(path, clock)
    assert ledger.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert "gpu_ns" not in [c[1] for c in ledger.db.execute("PRAGMA table_info(readings)")]
    assert ledger.record([reading(160.0, rx=9000)]) == 1  # counts from the reading version 1 kept
    [row] = ledger.usage("alice")
    assert row["cpu_seconds"] == pytest.approx(40 + 60) and row["rx_bytes"] == 1000 + 4000
    assert row["gpu_seconds"] == pytest.approx(7.0)


def test_the_api_reading_a_ledger_the_watchdog_has_not_migrated_yet_takes_it_forward(tmp_path):
    path = str(tmp_path / "usage.db")
    old = sqlite3.connect(path, isolation_level=None)
    for version in (1, 2):
        for statement in MIGRATIONS[version]:
            old.execute(statement)
    old.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    old.execute("INSERT INTO usage VALUES ('id-alice-p-1', 'alice', 'alice-p-1', 1799999970.0, 30.0, 0, 0.0, "
                "40000000000, 0, 0, 1000, 0, 0)")
    old.close()
    reader = Ledger(path, Clock(), reader=True)
    assert reader.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    [row] = reader.usage("alice", 1_799_913_600.0)  # its day is whole in the range: read from the daily totals
    assert row["cpu_seconds"] == pytest.approx(40.0) and row["rx_bytes"] == 1000
    writer = Ledger(path, Clock())  # the watchdog's next pass finds it current
    assert writer.usage("alice") == reader.usage("alice")


def row_sums(ledger: Ledger, since: float, until: float) -> dict[str, float]:
    """The reference: every row whose start is in the range, summed per instance (no daily totals)."""
    found = ledger.db.execute("SELECT instance_id, SUM(cpu_ns), SUM(seconds), SUM(rx_bytes) FROM usage "
                              "WHERE start >= ? AND start < ? GROUP BY instance_id", (since, until)).fetchall()
    return {r[0]: (r[1] / 1e9, r[2], r[3]) for r in found}


def test_daily_totals_give_the_same_sums_as_the_rows_for_any_range(tmp_path):
    clock = Clock(1_800_000_000.0 - 7 * 3600)  # starts mid-day (UTC)
    ledger = Ledger(str(tmp_path / "usage.db"), clock)
    names = ("alice-p-1", "bob-p-2")
    for step in range(3 * 24 * 12 + 40):  # three days and more of passes every 5 minutes
        ledger.record([reading(step * 2.0 + (n == "bob-p-2"), rx=step * 7, name=n) for n in names])
        clock.now += 300
        if step % 200 == 0:
            ledger.roll_up()
    clock.now -= 7200  # a clock stepped back: later passes start before earlier ones
    ledger.record([reading(3 * 24 * 12 * 2.0 + 500, name=n) for n in names])
    last = clock.now
    day = 86400
    start = clock.now // day * day - 3 * day
    ranges = [(0.0, None), (start, None), (start + 3600, None), (start + day, start + 2 * day), (start + 5, start + 7),
              (start + day - 30, start + 3 * day + 123), (start, last - 1000), (start, last + 3600), (last - 600, None),
              (start + 2 * day + 1, start + 2 * day + 1), (start + 2 * day, start + day)]
    for since, until in ranges:
        for owner in (None, "alice"):
            got = {r["instance_id"]: (r["cpu_seconds"], r["seconds"], r["rx_bytes"])
                   for r in ledger.usage(owner, since, until)}
            want = {k: v for k, v in row_sums(ledger, since, until if until is not None else float("inf")).items()
                    if owner is None or k.startswith(f"id-{owner}")}
            assert got.keys() == want.keys(), (since, until, owner)
            for key, values in want.items():
                assert got[key] == pytest.approx(values), (since, until, owner, key)
    assert ledger.usage(None, start, None)[0]["cpu_seconds"] > 0


def test_a_ledger_from_a_newer_dockpool_is_refused(tmp_path):
    path = str(tmp_path / "usage.db")
    Ledger(path).db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(LedgerUnreadable) as refused:
        Ledger(path)
    assert "newer" in refused.value.message


def test_rows_older_than_a_day_are_rolled_up_by_hour_with_the_same_sums(tmp_path):
    clock = Clock()
    ledger = Ledger(str(tmp_path / "usage.db"), clock)
    ledger.record([reading(0.0, name=n) for n in ("alice-p-1", "bob-p-2")])
    for step in range(1, 2 * 24 * 12 + 1):  # two days of passes every 5 minutes
        clock.now += 300
        ledger.record([reading(step * 1.0, rx=step * 1000, name=n) for n in ("alice-p-1", "bob-p-2")])
    before = ledger.usage()
    rows = ledger.db.execute("SELECT COUNT(*) FROM usage").fetchone()[0]
    merged = ledger.roll_up()
    after = ledger.usage()
    assert len(after) == len(before) == 2
    for got, had in zip(after, before):
        assert got == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in had.items()}
    left = ledger.db.execute("SELECT COUNT(*) FROM usage").fetchone()[0]
    assert merged >= 2 * 24 * 12 and left <= rows - merged + 2 * 25, (rows, merged, left)
    assert os.path.exists(ledger.backup_path)

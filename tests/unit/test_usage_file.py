"""The watchdog's usage file: the over-limit rule, whole-file writes, unreadable files."""
import json
import signal
import subprocess
import sys
import time

import pytest

from dockpool.atomicfile import read_json, write_json
from dockpool.usage import over_limit, read_usage
from support.waiting import until


@pytest.mark.parametrize(
    "entry, over",
    [
        ({"disk_limit": 100, "size_rw": 101, "size_deleted_open": 0, "state": "running"}, True),
        ({"disk_limit": 100, "size_rw": 100, "size_deleted_open": 0, "state": "running"}, False),
        ({"disk_limit": 100, "size_rw": 60, "size_deleted_open": 60, "state": "running"}, True),  # hidden but held
        ({"disk_limit": None, "size_rw": 10**12, "size_deleted_open": 0, "state": "running"}, False),
        ({"disk_limit": 100, "size_rw": 500, "size_deleted_open": 0, "state": "exited"}, False),  # already stopped
    ],
)
def test_over_limit(entry, over):
    assert (over_limit([entry]) == [entry]) is over


def test_write_json_replaces_whole(tmp_path):
    path = tmp_path / "sub" / "usage.json"
    write_json(str(path), {"a": 1})
    write_json(str(path), {"a": 2}, mode=0o600)
    assert read_json(str(path)) == {"a": 2}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["usage.json"]


def test_a_writer_killed_mid_write_never_leaves_a_corrupt_file(tmp_path):
    """Kill a process in a loop of big atomic writes; the file stays a complete report."""
    path = tmp_path / "usage.json"
    script = (
        "import sys\nfrom dockpool.atomicfile import write_json\n"
        "big = {'instances': {f'i{k}': {'size_rw': k} for k in range(20000)}}\n"
        "for n in range(100000):\n    big['n'] = n\n    write_json(sys.argv[1], big)\n"
    )
    for delay in (0.0, 0.05, 0.15):
        write_json(str(path), {"instances": {}, "n": -1})
        proc = subprocess.Popen([sys.executable, "-c", script, str(path)])
        # Killed while it writes, not before its first write (then the file would be the test's own).
        until(lambda: json.loads(path.read_text())["n"] >= 0, 60, "the writer's first write")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = json.loads(path.read_text())  # never truncated
        assert "instances" in data and isinstance(data["n"], int) and data["n"] >= 0


def test_unreadable_usage_file_is_ignored_not_fatal(tmp_path, caplog):
    path = tmp_path / "usage.json"
    assert read_usage(str(path)) is None
    path.write_text('{"instances": [')
    assert read_usage(str(path)) is None
    assert "unreadable" in caplog.text
    path.write_text('["not a report"]')
    assert read_usage(str(path)) is None
    write_json(str(path), {"updated": "x", "instances": {}})
    assert read_usage(str(path)) == {"updated": "x", "instances": {}}



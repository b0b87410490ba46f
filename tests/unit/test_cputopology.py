import pytest

from dockpool.cputopology import Topology, format_cpulist, parse_cpulist, read_topology
from dockpool.errors import InvalidInput


@pytest.mark.parametrize(
    "text, cpus",
    [("0", [0]), ("0-3", [0, 1, 2, 3]), ("0-1,4-5", [0, 1, 4, 5]), ("3,1,2", [1, 2, 3]), ("0-2,2", [0, 1, 2]), ("\n7\n", [7]), ("", [])],
)
def test_parse_cpulist(text, cpus):
    assert parse_cpulist(text) == cpus


@pytest.mark.parametrize("text", ["a", "3-1", "-1", "1-", "0,,x"])
def test_parse_cpulist_rejects(text):
    with pytest.raises(InvalidInput):
        parse_cpulist(text)


@pytest.mark.parametrize(
    "cpus, text", [([0, 1, 2, 5], "0-2,5"), ([5], "5"), ([], ""), ([3, 1, 2, 8, 9], "1-3,8-9"), ([0, 2, 4], "0,2,4")]
)
def test_format_cpulist_round_trips(cpus, text):
    assert format_cpulist(cpus) == text
    assert parse_cpulist(text) == sorted(cpus)


def fake_sysfs(root, siblings: dict[int, str], online: str, packages=None):
    (root / "online").write_text(online + "\n")
    for cpu, sibling_list in siblings.items():
        topo = root / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "thread_siblings_list").write_text(sibling_list + "\n")
        (topo / "physical_package_id").write_text(str((packages or {}).get(cpu, 0)))
    return str(root)


def test_intel_style_siblings_pair_n_with_n_plus_half(tmp_path):
    sysfs = fake_sysfs(tmp_path, {0: "0,4", 1: "1,5", 2: "2,6", 3: "3,7", 4: "0,4", 5: "1,5", 6: "2,6", 7: "3,7"}, "0-7")
    topo = read_topology(sysfs, allowed=range(8))
    assert topo.cores == ((0, 4), (1, 5), (2, 6), (3, 7))
    assert topo.physical_cores == 4 and topo.threads_per_core == 2 and len(topo.logical_cpus) == 8


def test_amd_style_adjacent_siblings_and_two_sockets(tmp_path):
    sysfs = fake_sysfs(tmp_path, {c: f"{c - c % 2}-{c - c % 2 + 1}" for c in range(8)}, "0-7", {c: c // 4 for c in range(8)})
    topo = read_topology(sysfs, allowed=range(8))
    assert topo.cores == ((0, 1), (2, 3), (4, 5), (6, 7))
    assert topo.sockets == 2 and topo.threads_per_core == 2


def test_offline_and_disallowed_cpus_are_left_out(tmp_path):
    sysfs = fake_sysfs(tmp_path, {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}, "0-3")
    topo = read_topology(sysfs, allowed=[0, 1, 2])  # cpu3 outside this process's affinity
    assert topo.cores == ((0, 2), (1,))
    assert topo.logical_cpus == [0, 1, 2]


def test_no_smt(tmp_path):
    sysfs = fake_sysfs(tmp_path, {0: "0", 1: "1"}, "0-1")
    topo = read_topology(sysfs, allowed=[0, 1])
    assert topo == Topology(cores=((0,), (1,)), sockets=1)
    assert topo.threads_per_core == 1


def test_this_host_matches_the_kernel():
    topo = read_topology()
    assert topo.physical_cores >= 1
    assert len(topo.logical_cpus) == len(set(topo.logical_cpus))
    assert topo.physical_cores * topo.threads_per_core >= len(topo.logical_cpus) / 2

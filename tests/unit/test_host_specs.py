"""The host's facts (CPU, OS, disk, GPUs) and their P2PRC /server_info form."""
import pytest

from dockpool.cputopology import Topology
from dockpool.gpus import read_gpus
from dockpool.host_specs import collect_specs, cpu_specs, existing_path, parse_cpu_model, parse_os_release, to_p2prc_server_info
from support.fake_nvml import FakeNVML, NVMLError, gpu


@pytest.mark.parametrize(
    "cpuinfo, model",
    [
        ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Gold 6130\n", "Intel(R) Xeon(R) Gold 6130"),
        ("processor\t: 0\nBogoMIPS\t: 108.00\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n", "Raspberry Pi 4 Model B Rev 1.4"),
        ("processor : 0\nmodel : 85\n", None),
        ("", None),
    ],
)
def test_cpu_model(cpuinfo, model):
    assert parse_cpu_model(cpuinfo) == model


def test_os_release():
    text = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\nVERSION_ID="24.04"\n# comment\n\n'
    assert parse_os_release(text) == {"PRETTY_NAME": "Ubuntu 24.04.1 LTS", "ID": "ubuntu", "VERSION_ID": "24.04"}


def test_cpu_specs_projection_reports_the_ht_factor():
    specs = cpu_specs(Topology(cores=((0, 4), (1, 5), (2, 6), (3, 7))), "model name : EPYC\n")
    assert specs == {"model": "EPYC", "sockets": 1, "physical_cores": 4, "logical_cpus": 8, "threads_per_core": 2,
                     "cores": [[0, 4], [1, 5], [2, 6], [3, 7]]}


def test_existing_path_climbs_to_an_ancestor(tmp_path):
    assert existing_path(str(tmp_path / "no" / "such" / "dir")) == str(tmp_path)


def test_collect_specs_with_a_fake_gpu_seam(tmp_path):
    specs = collect_specs(str(tmp_path), nvml=FakeNVML([gpu()]))
    assert specs["gpus"][0]["uuid"] == "GPU-00000000"
    assert specs["memory"]["total"] > specs["memory"]["available"] > 0
    assert specs["disk"]["path"] == str(tmp_path) and specs["disk"]["total"] >= specs["disk"]["free"] > 0
    assert specs["cpu"]["logical_cpus"] >= 1


def _specs(gpus):
    return {"hostname": "h1", "platform": {"distribution": "debian"}, "cpu": {"model": "Xeon"},
            "memory": {"total": 8 * 1024**3 + 5}, "disk": {"total": 100 * 1024**2 + 1}, "gpus": gpus}


def test_p2prc_server_info_without_gpu():
    assert to_p2prc_server_info(_specs([])) == {"Hostname": "h1", "Platform": "debian", "CPU": "Xeon", "RAM": 8192, "Disk": 100, "GPU": None}


def test_p2prc_server_info_first_gpu_in_p2prc_keys():
    info = to_p2prc_server_info(_specs(read_gpus(FakeNVML([gpu(0), gpu(1)]))))
    assert info["GPU"] == {
        "DriveVersion": "550.54.14",
        "Gpu": {
            "GpuName": "NVIDIA GeForce RTX 3090",
            "BiosVersion": "94.02.42.00.A9",
            "FanSpeed": "30 %",
            "Utilization": {"GpuUsage": "12 %", "MemoryUsage": "5 %"},
            "Temperature": {"GpuTemp": "41 C"},
            "Clock": {"GpuClock": "1395 MHz", "GpuMemClock": "9751 MHz"},
        },
    }


def test_p2prc_server_info_says_n_a_where_the_gpu_has_no_reading_as_nvidia_smi_does():
    info = to_p2prc_server_info(_specs(read_gpus(FakeNVML([gpu(0, fan=NVMLError("Not Supported"))]))))
    assert info["GPU"]["Gpu"]["FanSpeed"] == "N/A" and info["GPU"]["Gpu"]["Temperature"] == {"GpuTemp": "41 C"}

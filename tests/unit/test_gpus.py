"""GPU facts through NVML, faked at its one seam (support/fake_nvml.py)."""
import pytest

from dockpool.gpus import busy_by_process, read_gpus
from support.fake_nvml import FakeNVML, NVMLError, gpu


def test_two_gpus_every_field():
    nvml = FakeNVML([gpu(0), gpu(1, name="NVIDIA A100", fan=NVMLError("not supported"))])
    gpus = read_gpus(nvml)
    assert [g["index"] for g in gpus] == [0, 1]
    first = gpus[0]
    assert first == {
        "index": 0,
        "name": "NVIDIA GeForce RTX 3090",
        "uuid": "GPU-00000000",
        "driver": "550.54.14",
        "vbios": "94.02.42.00.A9",
        "fan_speed": 30,
        "utilization": {"gpu": 12, "memory": 5},
        "temperature": 41,
        "clocks": {"graphics": 1395, "memory": 9751},
        "memory": {"total": 24 * 1024**3, "used": 1024**3},
    }
    assert gpus[1]["name"] == "NVIDIA A100" and gpus[1]["fan_speed"] is None  # passive card
    assert nvml.shutdown_called


def test_bytes_names_from_old_bindings_are_decoded():
    assert read_gpus(FakeNVML([gpu()], bytes_names=True))[0]["name"] == "NVIDIA GeForce RTX 3090"


@pytest.mark.parametrize("error", [NVMLError("driver not loaded"), OSError("libnvidia-ml.so.1 not found")])
def test_no_driver_is_an_empty_list(error):
    assert read_gpus(FakeNVML([gpu()], init_error=error)) == []


def test_no_gpu_is_an_empty_list():
    assert read_gpus(FakeNVML([])) == []


def test_real_nvml_on_this_gpu_less_host_is_empty():
    assert read_gpus() == []




def test_busy_by_process_sums_each_process_latest_sample_over_gpus_within_the_window():
    now = 1_800_000_000.0
    nvml = FakeNVML([
        gpu(0, samples=[(4101, now - 20, 40), (4101, now - 2, 100), (4102, now - 3, 25), (4103, now - 45, 90)]),
        gpu(1, samples=[(4101, now - 1, 50)]),
        gpu(2),  # idle: NVML answers "not found"
    ])
    busy = busy_by_process(nvml, window_s=30.0, clock=lambda: now)
    assert busy == {4101: 1.5, 4102: 0.25}  # 4103's last sample is older than the pass before
    assert nvml.shutdown_called


def test_busy_by_process_without_driver_or_per_process_samples_is_empty():
    assert busy_by_process(FakeNVML([gpu()], init_error=OSError("libnvidia-ml.so.1 not found"))) == {}
    assert busy_by_process(FakeNVML([gpu(samples=NVMLError("Not Supported"))])) == {}
    assert busy_by_process() == {}  # the real library on this GPU-less host

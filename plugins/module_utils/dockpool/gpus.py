"""NVIDIA GPUs through NVML (the ``pynvml`` module of the nvidia-ml-py package).

The ``nvml`` argument is the one seam where tests may hand in a fake library:
there is no GPU on CI machines. No library, no driver or no GPU all give [].
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

from .libraries import pynvml


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _safe(nvml: Any, call: Callable[..., Any], *args: Any) -> Any:
    """One reading; a field the GPU does not support (fans on passive cards) becomes None."""
    try:
        return _text(call(*args))
    except nvml.NVMLError:
        return None


def _read_device(nvml: Any, index: int, driver: Optional[str]) -> dict:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    utilization = _safe(nvml, nvml.nvmlDeviceGetUtilizationRates, handle)
    memory = _safe(nvml, nvml.nvmlDeviceGetMemoryInfo, handle)
    return {
        "index": index,
        "name": _safe(nvml, nvml.nvmlDeviceGetName, handle),
        "uuid": _safe(nvml, nvml.nvmlDeviceGetUUID, handle),
        "driver": driver,
        "vbios": _safe(nvml, nvml.nvmlDeviceGetVbiosVersion, handle),
        "fan_speed": _safe(nvml, nvml.nvmlDeviceGetFanSpeed, handle),
        "utilization": {
            "gpu": getattr(utilization, "gpu", None),
            "memory": getattr(utilization, "memory", None),
        },
        "temperature": _safe(nvml, nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU),
        "clocks": {
            "graphics": _safe(nvml, nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_GRAPHICS),
            "memory": _safe(nvml, nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM),
        },
        "memory": {
            "total": getattr(memory, "total", None),
            "used": getattr(memory, "used", None),
        },
    }


@contextmanager
def _opened(nvml: Any) -> Iterator[Any]:
    """NVML initialised (``nvml``, else the real library) and shut down after; None where there
    is no library or no driver."""
    nvml = nvml if nvml is not None else pynvml
    if nvml is None:
        yield None
        return
    try:
        nvml.nvmlInit()
    except Exception:  # pylint: disable=broad-except  # no driver: NVMLError or OSError from ctypes
        yield None
        return
    try:
        yield nvml
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass


def read_gpus(nvml: Any = None) -> list[dict]:
    """Every NVIDIA GPU with its identity and live readings, in NVML's index order."""
    with _opened(nvml) as opened:
        if opened is None:
            return []
        driver = _safe(opened, opened.nvmlSystemGetDriverVersion)
        return [_read_device(opened, index, driver) for index in range(opened.nvmlDeviceGetCount())]


def busy_by_process(nvml: Any = None, window_s: float = 30.0, clock: Callable[[], float] = time.time) -> dict[int, float]:
    """How many GPUs' worth each process kept busy lately: per host PID, the sum over GPUs of
    its latest NVML sample's SM utilisation (0.99 is one GPU nearly all the time) within the last
    ``window_s``. A gauge sampled each metering pass, as memory is: NVML keeps no cumulative
    per-process GPU time for processes still running. No library, driver, GPU, or support for
    per-process samples (GPUs before Maxwell) gives {}."""
    since_us = int((clock() - window_s) * 1e6)  # NVML's sample times are the host's, in microseconds
    busy: dict[int, float] = {}
    with _opened(nvml) as opened:
        for index in range(opened.nvmlDeviceGetCount() if opened else 0):
            try:
                samples = opened.nvmlDeviceGetProcessUtilization(opened.nvmlDeviceGetHandleByIndex(index), since_us)
            except opened.NVMLError:
                continue  # no process sampled since (NVML says "not found"), or not supported
            latest: dict[int, Any] = {}
            for sample in samples:
                if sample.pid not in latest or sample.timeStamp > latest[sample.pid].timeStamp:
                    latest[sample.pid] = sample
            for pid, sample in latest.items():
                busy[pid] = busy.get(pid, 0.0) + min(100, sample.smUtil) / 100
    return busy

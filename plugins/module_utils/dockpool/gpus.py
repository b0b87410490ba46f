"""NVIDIA GPUs through NVML (the ``pynvml`` module of the nvidia-ml-py package).

The ``nvml`` argument is the one seam where tests may hand in a fake library:
there is no GPU on CI machines. No library, no driver or no GPU all give [].
"""
from __future__ import annotations

from typing import Any, Callable, Optional

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


def read_gpus(nvml: Any = None) -> list[dict]:
    """Every NVIDIA GPU with its identity and live readings, in NVML's index order."""
    nvml = nvml if nvml is not None else pynvml
    if nvml is None:
        return []
    try:
        nvml.nvmlInit()
    except Exception:  # pylint: disable=broad-except  # no driver: NVMLError or OSError from ctypes
        return []
    try:
        driver = _safe(nvml, nvml.nvmlSystemGetDriverVersion)
        return [_read_device(nvml, index, driver) for index in range(nvml.nvmlDeviceGetCount())]
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError:
            pass

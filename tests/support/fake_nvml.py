"""A stand-in for the pynvml module: the one seam where the GPU may be faked."""
from types import SimpleNamespace


class NVMLError(Exception):
    pass


class FakeNVML:
    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_GRAPHICS = 0
    NVML_CLOCK_MEM = 2

    def __init__(self, gpus, init_error=None, bytes_names=False):
        self.gpus = gpus
        self.init_error = init_error
        self.bytes_names = bytes_names
        self.shutdown_called = False

    def nvmlInit(self):
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self):
        self.shutdown_called = True

    def nvmlSystemGetDriverVersion(self):
        return "550.54.14"

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.gpus[index]

    def _get(self, handle, key):
        value = handle[key]
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlDeviceGetName(self, h):
        name = self._get(h, "name")
        return name.encode() if self.bytes_names else name

    def nvmlDeviceGetUUID(self, h):
        return self._get(h, "uuid")

    def nvmlDeviceGetVbiosVersion(self, h):
        return self._get(h, "vbios")

    def nvmlDeviceGetFanSpeed(self, h):
        return self._get(h, "fan")

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=h["util"][0], memory=h["util"][1])

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self._get(h, "temp")

    def nvmlDeviceGetClockInfo(self, h, clock):
        return self._get(h, "clocks")[clock]

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(total=h["mem"][0], used=h["mem"][1])

    def nvmlDeviceGetProcessUtilization(self, h, last_seen_us):
        """``h["samples"]``: (pid, time in s, SM %) as the driver keeps them; NVML answers
        "not found" when none is newer than ``last_seen_us``."""
        samples = [SimpleNamespace(pid=pid, timeStamp=int(at * 1e6), smUtil=sm, memUtil=0, encUtil=0, decUtil=0)
                   for pid, at, sm in self._get(h, "samples") if at * 1e6 > last_seen_us]
        if not samples:
            raise NVMLError("Not Found")
        return samples


def gpu(index=0, **overrides):
    base = {
        "name": "NVIDIA GeForce RTX 3090",
        "uuid": f"GPU-0000000{index}",
        "vbios": "94.02.42.00.A9",
        "fan": 30,
        "util": (12, 5),
        "temp": 41,
        "clocks": {0: 1395, 2: 9751},
        "mem": (24 * 1024**3, 1024**3),
        "samples": [],
    }
    base.update(overrides)
    return base

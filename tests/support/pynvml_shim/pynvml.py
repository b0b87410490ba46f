"""The ``pynvml`` module for a real service process in a test: NVML faked at its one seam.

Put this folder first on the service's PYTHONPATH, the tests' folder after it, and describe its GPUs in DOCKPOOL_FAKE_GPUS
(a JSON list of support.fake_nvml.gpu() overrides; a value "NVMLError" makes that reading
unsupported, as a passive card's fan is). Everything else in the service is real."""
import json
import os

from support.fake_nvml import FakeNVML, NVMLError, gpu


def _device(index: int, overrides: dict) -> dict:
    values = {k: NVMLError("Not Supported") if v == "NVMLError" else v for k, v in overrides.items()}
    if "clocks" in values:  # JSON keys are text; NVML's clock ids are numbers
        values["clocks"] = {int(k): v for k, v in values["clocks"].items()}
    return gpu(index, **values)


_FAKE = FakeNVML([_device(i, o) for i, o in enumerate(json.loads(os.environ.get("DOCKPOOL_FAKE_GPUS", "[]")))])
globals().update({name: getattr(_FAKE, name) for name in dir(_FAKE) if name.startswith(("nvml", "NVML"))})

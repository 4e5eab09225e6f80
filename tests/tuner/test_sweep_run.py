"""The offline sweep end to end: done once, a no-op the second time, killed and resumed
with identical results, a failed job not stopping the others, and Ray giving the same
results as the sequential run.

Every sweep runs as a real ``python -m commands.main sweep`` subprocess driving real eval
subprocesses on ``synthetic:tiny``; a pre-made profile for this machine stands in for
tuning (which the tuner's own tests cover) and its settings must reach every job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.hardware import fingerprint, hardware_id
from evaluation.records import STOP_AFTER_BATCH_ENV, read_records
from evaluation.reports import ordered_problems
from tuner.profiles import Profile, ProfileConfig, ProfileMetrics, save_profile
from tuner.sweep.manifest import Manifest

REPO = Path(__file__).resolve().parents[2]
JOBS = ("synthetic-tiny__synthetic-4__standard", "synthetic-tiny__synthetic-4__majority_vote")
SWEEP = """\
name: t
models: [synthetic:tiny]
datasets: [{{name: synthetic, count: 4}}]
modes:
  - standard
  - {{name: majority_vote, num_runs: 2}}
profiles_dir: {profiles}
tune: {{n_trials: 2}}
eval: {{max_new_tokens: 8}}
"""


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    hardware = fingerprint()
    config = ProfileConfig(backend="transformers", batch_size=2,
                           settings={"batch_size": 2, "dtype": "float32"})  # fmt: skip
    metrics = ProfileMetrics(problems_per_s=2.0, output_tokens_per_s=10.0, speedup=2.0,
                             baseline_problems_per_s=1.0, parity_agreement=1.0)  # fmt: skip
    profile = Profile(model="synthetic:tiny", hardware=hardware, hardware_id=hardware_id(hardware),
                      config=config, metrics=metrics)  # fmt: skip
    save_profile(profile, folder / "profiles")
    path = folder / "sweep.yaml"
    path.write_text(SWEEP.format(profiles=folder / "profiles"), encoding="utf-8")
    return path


def sweep(sweep_file: Path, root: Path, *extra: str, **popen: object) -> subprocess.Popen:
    command = [sys.executable, "-m", "commands", "sweep", str(sweep_file), "--results", str(root)]
    return subprocess.Popen([*command, *extra], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)  # fmt: skip


def finish(process: subprocess.Popen) -> tuple[int, str]:
    output, _ = process.communicate(timeout=400)
    return process.returncode, output


def problems(root: Path) -> dict[str, list[dict]]:
    """Each job's per-problem records in dataset order."""
    entries = Manifest(root).jobs()
    found = {}
    for job in JOBS:
        records, _ = read_records(root / entries[job]["folder"] / "records.jsonl")
        found[job] = [{k: v for k, v in p.items() if k != "session"} for p in
                      ordered_problems(records)]  # fmt: skip
    return found


@pytest.fixture(scope="module")
def reference(sweep_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reference")
    code, output = finish(sweep(sweep_file, root))
    assert code == 0, output
    return root


def test_sweep_runs_then_second_run_does_nothing(sweep_file: Path, reference: Path) -> None:
    entries = Manifest(reference).jobs()
    assert {k: (v["state"], v["attempts"]) for k, v in entries.items()} == {
        job: ("done", 1) for job in JOBS
    }
    for job in JOBS:  # the pre-made profile's settings reached every job, agents included
        run = json.loads((reference / entries[job]["folder"] / "run.json").read_text())
        assert run["engine"]["batch_size"] == 2 and run["engine"]["dtype"] == "float32"
        assert len(ordered_problems(read_records(reference / entries[job]["folder"] /
                                                 "records.jsonl")[0])) == 4  # fmt: skip
    for name in ("summary.md", "summary.csv", "summary.png"):
        assert (reference / name).stat().st_size > 0
    assert "majority_vote" in (reference / "summary.md").read_text()
    before = problems(reference)
    code, output = finish(sweep(sweep_file, reference))
    assert code == 0, output
    assert "all 2 jobs already done; nothing to run" in output
    assert {v["attempts"] for v in Manifest(reference).jobs().values()} == {1}
    assert problems(reference) == before


def test_killed_sweep_resumes_to_identical_results(
    sweep_file: Path, reference: Path, tmp_path: Path
) -> None:
    # The eval child freezes right after its first batch is on disk, so the
    # kill below lands mid-job however fast the machine is.
    process = sweep(sweep_file, tmp_path, start_new_session=True,
                    env=os.environ | {STOP_AFTER_BATCH_ENV: "1"})  # fmt: skip
    records = None
    deadline = time.monotonic() + 300
    while records is None and time.monotonic() < deadline:  # first job's first batch on disk
        found = list((tmp_path / JOBS[0]).glob("*/records.jsonl"))
        if found and any(r["kind"] == "batch" for r in read_records(found[0])[0]):
            records = found[0]
        time.sleep(0.02)
    assert records is not None, "the first batch never reached the disk"
    os.killpg(process.pid, signal.SIGKILL)  # the sweep and its eval child, mid-job
    process.communicate(timeout=60)
    num_done_at_kill = len(ordered_problems(read_records(records)[0]))
    assert num_done_at_kill < 4, "killed after the job had finished: not a mid-job kill"
    assert Manifest(tmp_path).jobs()[JOBS[0]]["state"] == "running"
    code, output = finish(sweep(sweep_file, tmp_path))
    assert code == 0, output
    entries = Manifest(tmp_path).jobs()
    assert entries[JOBS[0]]["attempts"] == 2 and entries[JOBS[1]]["attempts"] == 1
    assert problems(tmp_path) == problems(reference)


def test_failed_job_does_not_stop_the_others(sweep_file: Path, tmp_path: Path) -> None:
    for job in JOBS:  # a corrupt run folder in each job: the eval CLI refuses to resume it
        (tmp_path / job / "broken").mkdir(parents=True)
        (tmp_path / job / "broken" / "run.json").write_text("{torn")
    code, output = finish(sweep(sweep_file, tmp_path))
    assert code == 1, output
    entries = Manifest(tmp_path).jobs()
    assert [entries[job]["state"] for job in JOBS] == ["failed", "failed"]  # both were tried
    assert all("cannot read" in entries[job]["error"] for job in JOBS)
    assert "2 of 2 jobs failed" in output
    assert "cannot read" in (tmp_path / "summary.md").read_text()


def test_ray_gives_the_sequential_results(
    sweep_file: Path, reference: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'infertune[ray]')")
    code, output = finish(sweep(sweep_file, tmp_path, "--ray", "--workers", "2"))
    assert code == 0, output
    assert "running jobs on Ray (local): 2 CPUs" in output
    assert problems(tmp_path) == problems(reference)

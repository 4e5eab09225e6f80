"""The manifest: no update lost when several processes write it at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tuner.sweep.manifest import Job, Manifest, ManifestError

JOBS = [Job(id=f"job{i}", kind="eval", model="synthetic:tiny", dataset="synthetic", count=4)
        for i in range(4)]  # fmt: skip
NUM_UPDATES = 15


def _hammer(root: str, job_id: str) -> None:
    manifest = Manifest(Path(root))
    for _ in range(NUM_UPDATES):
        manifest.update(job_id, add_attempt=True, add_wall_s=1.0)
        manifest.update("job0", add_wall_s=0.5)  # every process also touches one shared job


def test_concurrent_updates_are_all_kept(tmp_path: Path) -> None:
    Manifest(tmp_path).sync(JOBS)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_hammer, args=(str(tmp_path), job.id)) for job in JOBS]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    jobs = Manifest(tmp_path).jobs()
    assert [jobs[j.id]["attempts"] for j in JOBS] == [NUM_UPDATES] * len(JOBS)
    shared = NUM_UPDATES * 1.0 + len(JOBS) * NUM_UPDATES * 0.5
    assert jobs["job0"]["wall_s"] == pytest.approx(shared)
    assert not list(tmp_path.glob(".sweep-manifest.json.*"))  # no temp file left behind


def test_running_job_of_a_dead_sweep_becomes_pending(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path)
    manifest.sync(JOBS)
    manifest.update("job1", state="running", add_attempt=True)
    manifest.update("job2", state="done")
    states = {k: v["state"] for k, v in Manifest(tmp_path).sync(JOBS).items()}
    assert states == {"job0": "pending", "job1": "pending", "job2": "done", "job3": "pending"}


def test_second_sweep_on_the_same_root_is_refused(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path)
    with manifest.exclusive_run():
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            message = pool.apply(_try_exclusive, (str(tmp_path),))
    assert "another sweep is running on" in message and "pid" in message


def _try_exclusive(root: str) -> str:
    try:
        with Manifest(Path(root)).exclusive_run():
            return "acquired"
    except ManifestError as error:
        return str(error)


def test_corrupted_manifest_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "sweep-manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="move it away"):
        Manifest(tmp_path).jobs()
    assert (tmp_path / "sweep-manifest.json").read_text() == "{not json"  # left as it was

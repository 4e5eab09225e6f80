"""Fan jobs out over a Ray cluster: one job per GPU, or per worker process on CPU.

Each Ray task runs :func:`tuner.sweep.execute.execute`, the very function the
sequential sweep calls, so a job is the same subprocess wherever it runs.
Workers write to the shared results root and update the manifest under its
file lock; on a multi-machine cluster that root must be a shared filesystem
(NFS and the like) and infertune must be installed on every node.  Ray is an
optional extra: without it ``--ray`` fails with one line naming the install.
"""

from __future__ import annotations

from typing import Any

from engines.errors import BackendUnavailableError
from tuner.sweep.execute import JobContext, execute
from tuner.sweep.manifest import Job
from tuner.sweep.runner import OnDone


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError(
            "--ray needs Ray, which is not installed; pip install 'infertune[ray]'"
        ) from None
    return ray


def _run_task(job: Job, context: JobContext, profile: str | None) -> dict[str, Any]:
    return execute(job, context, profile)


class RayExecutor:
    """Connects to ``address`` (``None``: start a local cluster of ``num_workers`` CPUs)."""

    def __init__(self, address: str | None, num_workers: int | None, env: dict[str, str]) -> None:
        ray = _import_ray()
        # the job environment (PYTHONPATH to this checkout, profiles dir, ...) is set
        # on every worker, so tasks import and run exactly what the driver would
        runtime_env = {"env_vars": env}
        if address is None:
            ray.init(num_cpus=num_workers, include_dashboard=False, runtime_env=runtime_env,
                     log_to_driver=False)  # fmt: skip
        else:
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
        self._ray = ray
        gpus = ray.cluster_resources().get("GPU", 0)
        # one job per GPU where there are GPUs; else one per worker process (CPU)
        resources = {"num_gpus": 1, "num_cpus": 0} if gpus else {"num_cpus": 1}
        self._task = ray.remote(max_retries=0, **resources)(_run_task)
        self.description = f"Ray ({'local' if address is None else address}):" + (
            f" {int(gpus)} GPUs" if gpus else f" {int(ray.cluster_resources().get('CPU', 0))} CPUs"
        )

    def __call__(self, jobs: list[tuple[Job, str | None]], context: JobContext,
                 on_done: OnDone) -> None:  # fmt: skip
        ray = self._ray
        waiting = [self._task.remote(job, context, profile) for job, profile in jobs]
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            on_done(ray.get(ready[0]))

    def close(self) -> None:
        self._ray.shutdown()

"""Measure one engine configuration on a workload, in a fresh subprocess.

vLLM does not give device memory back within a process, and a configuration
that runs out of memory (or crashes the interpreter) must not take the tuner
with it: :func:`run_trial` therefore starts ``python -m tuner.measurement.trial_worker`` for
every configuration, with a time limit, and always returns a
:class:`TrialResult`.  An OOM, a crash or a timeout is a result (``status``),
never an exception in the caller::

    result = run_trial("transformers", "synthetic:small", {"batch_size": 16}, workload)
    result.status, result.problems_per_s, result.canary_token_ids

The worker writes one progress line per finished batch; ``on_progress(done,
elapsed_s)`` sees each of them and may return ``True`` to stop the trial early
(status ``"pruned"``), which is how the search prunes clearly slower trials.
Used by ``infertune tune`` and reusable by any command that compares
configurations (e.g. a speedup report).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from common.children import die_with_parent
from tuner.measurement.workload import Workload

if TYPE_CHECKING:
    from tuner.answer_parity import ParityReport

Status = Literal["ok", "oom", "crashed", "timeout", "error", "pruned"]
STATUSES = ("ok", "oom", "crashed", "timeout", "error", "pruned")
FAULT_ENV = "INFERTUNE_FAULT"  # test hook, see tuner.trial_worker.install_fault
_REPO_ROOT = Path(__file__).resolve().parents[1]
_POLL_S = 0.5

ProgressCallback = Callable[[int, float], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrialResult:
    """What one configuration measured, or why it could not.

    Throughput covers the whole workload after a warm-up, device-synchronised.
    ``canary_answers`` / ``canary_token_ids`` are the greedy outputs of the
    workload's canary problems (answer parity); ``batch_latency`` is
    :class:`tuner.measure.Stats` in seconds as a dict.  The three parts of a
    run's wall time: ``load_s`` (from the start of the trial's subprocess to the
    engine ready: interpreter, imports, weights, vLLM start-up), ``warmup_s``
    (the untimed first batch: allocator growth, graph capture or compilation) and
    ``seconds`` (the timed run).
    """

    status: Status
    message: str = ""
    problems_per_s: float = 0.0
    output_tokens_per_s: float = 0.0
    seconds: float = 0.0
    load_s: float = 0.0
    warmup_s: float = 0.0
    num_problems: int = 0
    output_tokens: int = 0
    batch_latency: dict[str, Any] | None = None
    peak_memory_bytes: int | None = None
    num_oom_splits: int = 0
    canary_answers: tuple[str | None, ...] = ()
    canary_token_ids: tuple[tuple[int, ...], ...] = ()
    engine_settings: dict[str, Any] = field(default_factory=dict)
    # GPU use over the timed run (tuner.measure.GpuSampler): mean utilisation in %
    # and energy in J, summed over the GPUs; None without a GPU.
    gpu_utilization_pct: float | None = None
    gpu_energy_j: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"TrialResult.status must be one of {STATUSES}, got {self.status!r}")
        if self.status == "ok" and not self.problems_per_s > 0:
            raise ValueError("TrialResult.problems_per_s must be > 0 for an ok trial")

    @property
    def is_ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        """Read :meth:`as_dict` output, also of older versions (stored study references)."""
        values = dict(data)
        if "load_seconds" in values:  # its name before warm-up was measured too
            values.setdefault("load_s", values.pop("load_seconds"))
        # a result written by a newer worker sharing the storage: keep what this one knows
        values = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        values["canary_answers"] = tuple(values.get("canary_answers", ()))
        values["canary_token_ids"] = tuple(tuple(t) for t in values.get("canary_token_ids", ()))
        return cls(**values)


def parity(result: TrialResult, reference: TrialResult) -> float:
    """Fraction of canary problems on which ``result`` agrees with ``reference``.

    The one rule of :func:`tuner.answer_parity.agreement`: extracted answers
    when the reference answers most problems (a real model), otherwise tokens
    (random-weight models).  A failed trial agrees on nothing.
    """
    from tuner.answer_parity import agreement

    if not _comparable(result, reference):
        return 0.0
    return agreement(
        result.canary_answers,
        result.canary_token_ids,
        reference.canary_answers,
        reference.canary_token_ids,
    )


def parity_report(
    result: TrialResult, reference: TrialResult, golds: Sequence[str]
) -> ParityReport:
    """:func:`tuner.answer_parity.compare` of the two trials' canaries.

    ``golds`` are the workload's gold answers, canaries first (extra ones are
    ignored).  A failed trial agrees on nothing and counts no flips.
    """
    from tuner.answer_parity import ParityReport, compare, is_answering

    count = len(reference.canary_token_ids)
    if not _comparable(result, reference):
        answering = is_answering(reference.canary_answers)
        return ParityReport(num_problems=count, is_answering=answering, agreement=0.0)
    return compare(
        result.canary_answers[:count],
        result.canary_token_ids[:count],
        reference.canary_answers,
        reference.canary_token_ids,
        golds[:count],
    )


def _comparable(result: TrialResult, reference: TrialResult) -> bool:
    # a partial reference holds the first canaries only: a trial is judged on those
    count = len(reference.canary_token_ids)
    return result.is_ok and count > 0 and len(result.canary_token_ids) >= count


def workload_prefix(workload: Workload, size: int) -> Workload:
    """The first ``size`` problems of ``workload`` (all of them when it has fewer).

    A prefix of a seeded sample is itself a seeded sample, so a trial that needs
    more problems than another measures a superset of them, canaries first.
    """
    size = min(size, workload.size)
    if size == workload.size:
        return workload
    lengths = workload.output_lengths
    return dataclasses.replace(
        workload,
        problem_ids=workload.problem_ids[:size],
        prompts=workload.prompts[:size],
        answers=workload.answers[:size],
        output_lengths=None if lengths is None else lengths[:size],
        num_canary=min(workload.num_canary, size),
    )


def run_trial(
    backend: str,
    model: str,
    settings: Mapping[str, Any],
    workload: Workload,
    *,
    time_limit_s: float = 600.0,
    on_progress: ProgressCallback | None = None,
    env: Mapping[str, str] | None = None,
) -> TrialResult:
    """Run ``load_engine(backend, model, **settings)`` on ``workload`` in a subprocess.

    Args:
        backend: engine backend name (``engines.backend_names()``).
        model: model id or path.
        settings: backend config fields, passed unchanged to ``load_engine``.
        workload: the prompts (and replayed lengths) to time.
        time_limit_s: wall-clock limit for the whole subprocess (load included);
            past it the process group is killed and the status is ``"timeout"``.
        on_progress: called with (problems done, seconds of timed generation)
            after each batch; returning ``True`` kills the trial (``"pruned"``).
        env: extra environment variables for the subprocess.

    Returns:
        The measurement, or a result whose ``status`` says why there is none.
    """
    with tempfile.TemporaryDirectory(prefix="infertune-trial-") as folder:
        folder_path = Path(folder)
        spec = {
            "backend": backend,
            "model": model,
            "settings": dict(settings),
            "workload": json.loads(workload.to_json()),
            # wall clock, not monotonic: the worker measures its load time from here
            "started_at": time.time(),
        }
        (folder_path / "spec.json").write_text(json.dumps(spec))
        paths = [folder_path / name for name in ("spec.json", "result.json", "progress.jsonl")]
        command = [sys.executable, "-m", "tuner.measurement.trial_worker", *map(str, paths)]
        with open(folder_path / "stderr.log", "wb") as stderr:
            process = subprocess.Popen(
                command,
                env=_trial_env(backend, env),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own group: kill it whole
                preexec_fn=die_with_parent(),  # and no orphan when the tuner is killed
            )
            try:
                ended = _supervise(process, paths[2], time_limit_s, on_progress)
            except BaseException:  # the tuner is stopping (SIGTERM, Ctrl-C): so is the trial
                _kill(process)
                raise
        if ended is not None:
            return TrialResult(status=ended[0], message=ended[1], **_progress_so_far(paths[2]))
        if paths[1].is_file():
            return TrialResult.from_dict(json.loads(paths[1].read_text()))
        return TrialResult(status="crashed", message=_crash_message(process, folder_path))


def _supervise(
    process: subprocess.Popen,
    progress_path: Path,
    time_limit_s: float,
    on_progress: ProgressCallback | None,
) -> tuple[Status, str] | None:
    """Wait for ``process``; kill it on timeout or prune.  ``None``: it exited by itself."""
    deadline = time.monotonic() + time_limit_s
    seen = 0
    while True:
        try:
            process.wait(timeout=_POLL_S)  # sleeps in the kernel: no busy-wait on shared cores
            return None
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            _kill(process)
            return "timeout", f"trial exceeded its time limit of {time_limit_s:g} s"
        if on_progress is None or not progress_path.is_file():
            continue
        lines = progress_path.read_text().splitlines()
        for line in lines[seen:]:
            try:
                done, elapsed, *_ = json.loads(line)
            except ValueError:  # a line being written right now
                break
            seen += 1
            if on_progress(done, elapsed):
                _kill(process)
                return "pruned", f"stopped after {done} problems: clearly slower than the best"


def _progress_so_far(progress_path: Path) -> dict[str, Any]:
    """What a stopped trial had finished: problems, timed seconds and its leading canaries
    (each line adds the canaries finished since the one before).

    The parity reference keeps these when it runs out of time
    (:func:`tuner.search.reference.partial_reference`).
    """
    lines = progress_path.read_text().splitlines() if progress_path.is_file() else []
    progress, canaries = {}, []
    for line in lines:
        try:
            done, elapsed, newly = json.loads(line)
        except ValueError:  # the line being written when the trial was killed
            break
        progress = {"num_problems": done, "seconds": elapsed}
        canaries += newly
    if not progress:
        return {}
    return progress | {
        "canary_answers": tuple(answer for answer, _ in canaries),
        "canary_token_ids": tuple(tuple(ids) for _, ids in canaries),
    }


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # it may have exited meanwhile
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _trial_env(backend: str, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
    if backend == "vllm":
        env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if not _has_cuda():
            # vLLM's CPU backend in one process is ~20x slower with more OpenMP threads.
            env["OMP_NUM_THREADS"] = "1"
    return env | dict(extra or {})


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _crash_message(process: subprocess.Popen, folder: Path) -> str:
    code = process.returncode
    cause = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    lines = [ln for ln in (folder / "stderr.log").read_text(errors="replace").splitlines() if ln]
    return f"trial process crashed ({cause})" + (f": {lines[-1][:300]}" if lines else "")

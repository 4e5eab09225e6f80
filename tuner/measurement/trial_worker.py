"""``python -m tuner.measurement.trial_worker SPEC RESULT PROGRESS``: measure one configuration.

Runs in its own process (see :func:`tuner.benchmark.run_trial`): loads the
engine (``load_s``, from the process start), warms it up (``warmup_s``, not in
the throughput), times generation of the whole workload batch by
batch, and writes a :class:`tuner.benchmark.TrialResult` as JSON to RESULT.
After each batch it appends ``[problems done, seconds]`` to PROGRESS so the
parent can prune a slow trial.  Expected failures (out of memory, a bad
setting, a missing backend) become results; anything else crashes the process,
which the parent records as ``"crashed"``.

Test hook: ``INFERTUNE_FAULT=oom_above_batch:N`` makes the transformers model's
``generate`` raise ``torch.OutOfMemoryError`` for batches of more than N rows,
and ``crash_above_batch:N`` kills the process instead (see :func:`install_fault`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from common.io import write_atomic
from engines import Engine, GenerationRequest, load_engine
from engines.errors import EngineOutOfMemoryError, InfertuneError
from engines.registry import batch_field
from tuner.measurement.benchmark import FAULT_ENV, TrialResult
from tuner.measurement.measure import GpuSampler, GpuUsage, LatencyTracker, PeakMemory, Stats
from tuner.measurement.workload import Workload

WARMUP_REQUESTS = 2


def install_fault(engine: Engine, fault: str) -> None:
    """Inject a fault at the lowest layer: the transformers model's ``generate``.

    ``fault`` is ``"oom_above_batch:N"``, ``"crash_above_batch:N"`` or
    ``"hang_after_calls:N"`` (calls past the N-th, warm-up included, never return:
    a run stopped by its time limit).  Only for tests; the engine above sees a
    real ``torch.OutOfMemoryError`` (or dies, or waits).
    """
    import torch

    kind, _, limit_text = fault.partition(":")
    kinds = ("oom_above_batch", "crash_above_batch", "hang_after_calls")
    if kind not in kinds or not limit_text.isdigit():
        raise InfertuneError(f"{FAULT_ENV}={fault!r}: want one of {', '.join(kinds)}, then :N")
    model = getattr(engine, "model", None)
    if model is None:
        raise InfertuneError(f"{FAULT_ENV} needs the transformers backend (a .model.generate)")
    limit, original, calls = int(limit_text), model.generate, [0]

    def generate(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if kind == "hang_after_calls":
            if calls[0] > limit:
                time.sleep(3600)
            return original(*args, **kwargs)
        rows = kwargs["input_ids"].shape[0]
        if rows > limit:
            if kind == "crash_above_batch":
                os.kill(os.getpid(), signal.SIGKILL)
            raise torch.OutOfMemoryError(f"injected out of memory: {rows} rows > {limit}")
        return original(*args, **kwargs)

    model.generate = generate


class _DoesNotFit(Exception):
    """The engine survived an out-of-memory batch only by splitting it."""

    def __init__(self, splits: int) -> None:
        super().__init__(f"ran out of memory {splits} time(s); the engine had to split batches")
        self.splits = splits


def _warm_up(engine: Engine, workload: Workload, backend: str, settings: dict[str, Any]) -> None:
    # One full batch at the workload's real lengths: a token-sized warm-up left
    # the allocator's growth to batch-sized caches inside the timed run (a
    # 32-row batch took twice as long the first time as the second), which made
    # large batches look no faster than batch 1.
    # vLLM is exempt: it allocates its KV cache at start-up and batches continuously,
    # so a few requests warm it, and a full batch of 256 would be a third of its trial.
    full = None if backend == "vllm" else settings.get(batch_field(backend))
    size = full or WARMUP_REQUESTS
    requests = workload.requests()[:size]
    if size == 1:
        # Batch 1 (the parity reference) grows no batch-sized cache: a short request warms
        # it up, where a whole one cost a fifth of a 4-canary reference on a real model.
        requests = [_shortened(r, WARMUP_TOKENS) for r in requests]
    engine.generate(requests)


WARMUP_TOKENS = 8


def _shortened(request: GenerationRequest, tokens: int) -> GenerationRequest:
    target = request.target_output_tokens
    return dataclasses.replace(
        request,
        max_new_tokens=min(tokens, request.max_new_tokens),
        target_output_tokens=None if target is None else min(target, tokens),
    )


def _timed_run(engine: Engine, workload: Workload, progress: Path) -> dict[str, Any]:
    from evaluation.grading import extract_answer

    requests = workload.requests()
    outputs: list[Any] = [None] * len(requests)
    tracker, batches, done, reported = LatencyTracker(), engine.iter_batches(requests), 0, 0
    with PeakMemory() as memory, GpuSampler() as gpu, progress.open("a") as log:
        while True:
            with tracker.track():  # one block per batch: latency per batch
                batch = next(batches, None)
            if batch is None:
                break
            if engine.stats.num_oom_splits:  # stop at once: waiting only lets a pruner hide it
                raise _DoesNotFit(engine.stats.num_oom_splits)
            for index, completions in zip(batch.indices, batch.outputs, strict=True):
                outputs[index] = completions[0]
            done += len(batch.indices)
            newly = _newly_finished_canaries(outputs, workload.num_canary, reported)
            reported += len(newly)
            log.write(json.dumps([done, tracker.total().value, newly]) + "\n")
            log.flush()
    seconds = tracker.total().value
    # The last block is the call that found no batch left: part of the run, not a batch.
    latency = Stats.from_samples(tracker.durations[:-1], "s")
    tokens = sum(c.completion_tokens for c in outputs)
    canary = outputs[: workload.num_canary]
    return {
        "problems_per_s": len(requests) / seconds,
        "output_tokens_per_s": tokens / seconds,
        "seconds": seconds,
        "num_problems": len(requests),
        "output_tokens": tokens,
        "batch_latency": latency.as_dict(),
        "peak_memory_bytes": int(memory.peak.value) if memory.peak else None,
        "canary_answers": tuple(extract_answer(c.text) for c in canary),
        "canary_token_ids": tuple(tuple(c.token_ids) for c in canary),
        **_gpu_fields(gpu.usage),
    }


def _newly_finished_canaries(outputs: list[Any], num_canary: int, start: int) -> list[list[Any]]:
    """``[answer, token ids]`` of the canaries from ``start`` on that are finished, in order,
    up to the first missing one: each progress line carries those not reported before, so a
    run stopped at its time limit can still give the parity reference what it finished."""
    from evaluation.grading import extract_answer

    finished = []
    for completion in outputs[start:num_canary]:
        if completion is None:
            break
        finished.append([extract_answer(completion.text), list(completion.token_ids)])
    return finished


def _gpu_fields(usage: GpuUsage | None) -> dict[str, float | None]:
    utilization = usage.mean_utilization if usage else None
    energy = usage.energy if usage else None
    return {
        "gpu_utilization_pct": utilization.value if utilization else None,
        "gpu_energy_j": energy.value if energy else None,
    }


def engine_settings(
    backend: str, model: str, settings: dict[str, Any], workload: Workload
) -> dict[str, Any]:
    """The trial's settings, plus vLLM's ``max_model_len`` sized for this workload.

    Added here rather than in the searched configuration, so a profile stays
    valid for an evaluation with other prompts (which sizes its own).
    """
    if backend != "vllm":
        return settings
    from engines.vllm_sizing import with_model_len

    return with_model_len(settings, model, workload.requests())


def measure(spec: dict[str, Any], progress: Path) -> TrialResult:
    """Load, warm up and time one configuration; expected failures become results."""
    import torch

    workload = Workload.from_json(json.dumps(spec["workload"]))
    # The parent's clock when it started this process: load_s then holds the
    # interpreter and the imports too, as a real run's wall time does.
    started = spec.get("started_at", time.time())
    try:
        settings = engine_settings(spec["backend"], spec["model"], spec["settings"], workload)
        with load_engine(spec["backend"], spec["model"], **settings) as engine:
            if os.environ.get(FAULT_ENV):
                install_fault(engine, os.environ[FAULT_ENV])
            load_s = time.time() - started
            warm = time.perf_counter()
            _warm_up(engine, workload, spec["backend"], spec["settings"])
            warmup_s = time.perf_counter() - warm
            engine.forget_cached_prompts()  # the timed run repeats the warm-up's prompts
            engine.stats.num_oom_splits = 0
            metrics = _timed_run(engine, workload, progress)
            resolved = engine.settings()
    except _DoesNotFit as error:  # the configured batch size does not fit in memory
        return TrialResult(status="oom", num_oom_splits=error.splits, message=str(error))
    except (EngineOutOfMemoryError, torch.OutOfMemoryError, MemoryError) as error:
        return TrialResult(status="oom", message=_one_line(error))
    except InfertuneError as error:
        return TrialResult(status="error", message=_one_line(error))
    return TrialResult(
        status="ok", load_s=load_s, warmup_s=warmup_s, engine_settings=resolved, **metrics
    )


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:500]


def main(argv: list[str]) -> int:
    spec_path, result_path, progress_path = map(Path, argv)
    result = measure(json.loads(spec_path.read_text()), progress_path)
    write_atomic(result_path, json.dumps(result.as_dict()))  # the parent never reads half a result
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

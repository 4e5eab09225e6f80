"""How many sequences fit: a measured memory model of generation, then a confirmation.

The probe loads the model once and measures, rather than guesses:

1. the weights (GPU: ``torch.cuda.memory_allocated`` after load; CPU: parameter
   and buffer bytes, because the resident-set growth of a load also counts the
   libraries it imports);
2. the peak memory of real generations at a few batch sizes, at the workload's
   p90 prompt length and p90 output length (replayed, so random-weight models
   generate exactly that many tokens and the KV cache grows as it would), and a
   least-squares line through them: its slope is what one more sequence costs;
3. the largest batch predicted to fit in the available memory less a safety
   margin, capped at the workload size (a larger batch never forms);
4. one real generation at that size under a real memory limit; on failure the
   size shrinks by 10% and is retried, as accelerate's
   ``find_executable_batch_size`` does, and every shrink is reported.

Other harnesses time one forward pass; this measures generation, where the KV
cache grows with every token.  :func:`run_probe` is the entry point; how a
peak is read and a limit imposed on CPU and CUDA lives in :mod:`tuner.measurement.probe_memory`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from common.hardware import Hardware, fingerprint, hardware_id
from engines import GenerationRequest
from engines.errors import ConfigError, InfertuneError
from evaluation.prompts import PromptSettings
from tuner.measurement.probe_memory import (
    Attempt,
    BatchMeasurement,
    Memory,
    attempt,
    kv_bytes_per_sequence,
    measure,
    memory_for,
)
from tuner.measurement.workload import DEFAULT_MAX_NEW_TOKENS, Workload, build_workload

DEFAULT_BATCH_SIZES = (1, 2, 4)
MAX_BATCH_SIZE = 1024
SHRINK_FACTOR = 0.9
SUPPORTED_BACKENDS = ("transformers",)


class ProbeError(InfertuneError):
    """The probe cannot produce a batch size (nothing fits, or every size failed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeLengths:
    """The sequence the probe generates: the workload's p90 prompt and output lengths."""

    prompt_tokens: int
    output_tokens: int
    num_problems: int
    output_source: str

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "output_tokens", "num_problems"):
            if getattr(self, name) < 1:
                raise ValueError(f"ProbeLengths.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Shrink:
    """A confirmation failed at ``from_batch``; the next try is ``to_batch``."""

    from_batch: int
    to_batch: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeResult:
    """Everything the probe measured and decided; sizes in bytes.

    ``memory_max_batch`` is what the memory model says fits (uncapped),
    ``predicted_max_batch`` that capped at ``batch_cap``; the confirmation starts
    at ``confirm_start`` (the prediction unless a start was asked for) and
    ``confirmed_batch`` is the size whose real generation succeeded.
    """

    model: str
    backend: str
    dataset: str
    hardware: Hardware
    hardware_id: str
    device: str
    dtype: str
    lengths: ProbeLengths
    weights_bytes: int
    weights_method: str
    kv_bytes_per_sequence: int | None
    per_sequence_bytes: float
    intercept_bytes: float
    slope_clamped: bool
    memory_method: str
    measurements: tuple[BatchMeasurement, ...]
    available_bytes: int
    available_method: str
    safety_margin: float
    memory_max_batch: int
    batch_cap: int
    predicted_max_batch: int
    confirm_start: int
    confirmed_batch: int
    attempts: tuple[Attempt, ...]
    shrinks: tuple[Shrink, ...]
    notes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.confirmed_batch <= self.confirm_start:
            raise ValueError(
                f"confirmed_batch must be in [1, confirm_start={self.confirm_start}],"
                f" got {self.confirmed_batch}"
            )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``--json`` output)."""
        data = asdict(self)
        data["hardware"] = self.hardware.as_dict()
        return data


def run_probe(
    model: str,
    dataset: str | None = None,
    *,
    backend: str = "transformers",
    data_dir: str | Path | None = None,
    safety_margin: float = 0.1,
    memory_limit: int | None = None,
    num_problems: int = 64,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    max_batch_size: int | None = None,
    start_batch_size: int | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    dtype: str = "auto",
    chat_template: bool | None = None,
    system_prompt: str | None = None,
    stop: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProbeResult:
    """Measure ``model``'s memory per sequence on ``dataset`` and confirm a max batch.

    Args:
        model: model id or path (``synthetic:small``, ``Qwen/Qwen2.5-1.5B``, ...).
        dataset: dataset whose p90 prompt and output lengths are probed (default gsm8k).
        backend: the engine backend; only ``transformers`` exposes its memory.
        data_dir: where the dataset files live (see :mod:`evaluation.datasets`).
        safety_margin: fraction of the available memory kept free, in [0, 1).
        memory_limit: bytes the weights plus generation may use, instead of the
            free GPU memory or available RAM; the confirmation runs under it for
            real (a CUDA memory fraction, or an address-space rlimit on CPU).
        num_problems: the workload size (:func:`tuner.workload.build_workload`'s sample).
        batch_sizes: at least two distinct batch sizes to measure.
        max_batch_size: cap on the prediction (default: ``num_problems``; at most 1024).
        start_batch_size: confirm from this size instead of the prediction, as
            accelerate's ``starting_batch_size`` (for a size chosen elsewhere).
        max_new_tokens: the workload's output limit (replayed lengths are clipped to it).
        dtype: the engine's dtype setting.
        chat_template: ``None`` (auto: on when the tokenizer has one), ``True``, ``False``;
            with ``system_prompt`` and ``stop``, the prompts are sent as eval sends them.
        progress: called with a line before each generation (each can take
            minutes at batch 1 on a large model).

    Raises:
        ConfigError: an invalid argument or an unsupported backend.
        ModelLoadError: the model cannot be loaded.
        DatasetError: the dataset cannot be read.
        WorkloadError: the dataset has fewer problems than ``num_problems``.
        ProbeError: not even one sequence fits, or a confirmation at batch 1 failed.
    """
    _validate(backend, safety_margin, memory_limit, batch_sizes, max_batch_size, start_batch_size)
    dataset = dataset or "gsm8k"
    # The prompt flags, checked before the load; "auto" is resolved with the workload.
    PromptSettings(apply_chat_template=chat_template is not False, system_prompt=system_prompt,
                   stop=tuple(stop or ()))  # fmt: skip
    cap = min(max_batch_size or num_problems, MAX_BATCH_SIZE)
    from engines import load_engine

    with load_engine(backend, model, batch_size=MAX_BATCH_SIZE, dtype=dtype) as engine:
        # Built after the load, as the probe always did: address space that malloc
        # reserves before the load would later escape the confirmation's rlimit.
        workload = build_workload(
            model,
            dataset,
            size=num_problems,
            max_new_tokens=max_new_tokens,
            data_dir=data_dir,
            chat_template=chat_template,
            system_prompt=system_prompt,
            stop=stop,
        )
        lengths, prompt = _probe_lengths(engine, workload)
        memory = memory_for(engine.device)
        weights = memory.weights_bytes(engine.model)
        if memory_limit is not None and memory_limit <= weights:
            raise ConfigError(
                f"memory_limit {memory_limit} B is not above the weights ({weights} B);"
                " raise --memory-limit"
            )
        requests = _request_factory(prompt, lengths.output_tokens)
        report = progress or (lambda line: None)
        shape = f"{lengths.prompt_tokens} prompt + {lengths.output_tokens} output tokens"
        report(f"warm-up at batch {min(batch_sizes)} ({shape})")
        engine.generate(requests(min(batch_sizes)))  # warm-up: lazy allocations and kernels
        measured = []
        for size in sorted(batch_sizes):
            report(f"measuring peak memory at batch {size}")
            measured.append(measure(memory, engine, requests(size)))
        measurements = tuple(measured)
        budget = memory_limit - weights if memory_limit is not None else memory.available_bytes()
        kv = kv_bytes_per_sequence(engine.model, lengths.prompt_tokens + lengths.output_tokens)
        fit = _fit(measurements, budget, safety_margin, kv or 1, lengths)
        predicted = min(fit.max_batch, cap)
        start = start_batch_size or predicted
        attempts, shrinks = _confirm(memory, engine, requests, start, budget, report)
        hardware = fingerprint()
        return ProbeResult(
            model=model,
            backend=backend,
            dataset=dataset,
            hardware=hardware,
            hardware_id=hardware_id(hardware),
            device=memory.name,
            dtype=str(engine.dtype).removeprefix("torch."),
            lengths=lengths,
            weights_bytes=weights,
            weights_method=memory.weights_method,
            kv_bytes_per_sequence=kv,
            per_sequence_bytes=fit.slope,
            intercept_bytes=fit.intercept,
            slope_clamped=fit.clamped,
            memory_method=memory.peak_method,
            measurements=measurements,
            available_bytes=budget,
            available_method="memory_limit" if memory_limit is not None else memory.free_method,
            safety_margin=safety_margin,
            memory_max_batch=fit.max_batch,
            batch_cap=cap,
            predicted_max_batch=predicted,
            confirm_start=start,
            confirmed_batch=attempts[-1].batch_size,
            attempts=attempts,
            shrinks=shrinks,
            notes=_notes(fit, cap, max_batch_size, start_batch_size),
        )


def _validate(
    backend: str,
    safety_margin: float,
    memory_limit: int | None,
    batch_sizes: Sequence[int],
    max_batch_size: int | None,
    start_batch_size: int | None,
) -> None:
    if backend not in SUPPORTED_BACKENDS:
        raise ConfigError(
            f"probe backend must be one of {', '.join(SUPPORTED_BACKENDS)}, got {backend!r}"
            " (vLLM sizes its KV cache from gpu_memory_utilization itself)"
        )
    if not 0 <= safety_margin < 1:
        raise ConfigError(f"safety_margin must be in [0, 1), got {safety_margin}")
    if memory_limit is not None and memory_limit <= 0:
        raise ConfigError(f"memory_limit must be > 0 bytes, got {memory_limit}")
    if len(set(batch_sizes)) < 2 or min(batch_sizes) < 1:
        raise ConfigError(f"batch_sizes needs two distinct sizes >= 1, got {list(batch_sizes)}")
    for name, value in (("max_batch_size", max_batch_size), ("start_batch_size", start_batch_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")


@dataclass(frozen=True, slots=True)
class _Fit:
    slope: float
    intercept: float
    clamped: bool
    max_batch: int


def _fit(
    measurements: Sequence[BatchMeasurement],
    budget: int,
    safety_margin: float,
    min_slope: int,
    lengths: ProbeLengths,
) -> _Fit:
    """Least-squares ``peak = intercept + slope * batch`` and the largest batch it allows.

    A slope below ``min_slope`` (the KV cache alone, which every sequence needs)
    is measurement noise on a small model, so it is raised to that floor.

    Raises:
        ProbeError: not even one sequence fits in the budget.
    """
    xs = [m.batch_size for m in measurements]
    ys = [m.peak_bytes for m in measurements]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var
    intercept = mean_y - slope * mean_x
    usable = budget * (1 - safety_margin) - max(intercept, 0.0)
    per_sequence = max(slope, float(min_slope))
    max_batch = math.floor(usable / per_sequence) if usable > 0 else 0
    if max_batch < 1:
        raise ProbeError(
            f"not even one sequence of {lengths.prompt_tokens}+{lengths.output_tokens} tokens"
            f" fits: {budget} B available, {per_sequence:.0f} B per sequence plus"
            f" {intercept:.0f} B fixed; raise --memory-limit or lower --safety-margin"
        )
    return _Fit(per_sequence, intercept, slope < min_slope, max_batch)


def _confirm(
    memory: Memory,
    engine: Any,
    requests: Any,
    start: int,
    budget: int,
    report: Callable[[str], None],
) -> tuple[tuple[Attempt, ...], tuple[Shrink, ...]]:
    """Generate at ``start`` under the budget, shrinking by 10% until one succeeds."""
    attempts: list[Attempt] = []
    shrinks: list[Shrink] = []
    size = start
    while True:
        report(f"confirming batch {size} under {budget / 2**20:,.0f} MiB")
        result = attempt(memory, engine, requests(size), budget)
        attempts.append(result)
        if result.ok:
            return tuple(attempts), tuple(shrinks)
        if size == 1:
            raise ProbeError(
                f"a confirmation at batch size 1 failed ({result.error}); the model does not"
                " fit in the available memory: raise --memory-limit or use a smaller model"
            )
        smaller = max(1, math.floor(size * SHRINK_FACTOR))
        shrinks.append(Shrink(from_batch=size, to_batch=smaller, reason=result.error or "OOM"))
        size = smaller


def _notes(fit: _Fit, cap: int, max_batch_size: int | None, start: int | None) -> tuple[str, ...]:
    notes = []
    if fit.max_batch > cap:
        why = "--max-batch-size" if max_batch_size else "the workload size (--count)"
        notes.append(f"memory fits {fit.max_batch} sequences; capped at {cap} by {why}")
    if fit.clamped:
        notes.append("measured slope was below the KV-cache size: raised to the KV-cache size")
    if start is not None:
        notes.append(f"confirmation started at the requested batch size {start}")
    return tuple(notes)


def _request_factory(request: GenerationRequest, output_tokens: int):  # noqa: ANN202
    # Replayed to exactly ``output_tokens``: the KV cache grows as it would, whether or
    # not the model would stop earlier.
    probed = replace(request, max_new_tokens=output_tokens, target_output_tokens=output_tokens)
    return lambda batch_size: [probed] * batch_size


def _probe_lengths(engine: Any, workload: Workload) -> tuple[ProbeLengths, GenerationRequest]:
    """The p90-length request of the tuner's workload (chat template included) and the
    output length.

    The output is the p90 of the replayed lengths for ``synthetic:`` models, and
    ``max_new_tokens`` for real ones, which may generate up to it.
    """
    from engines.tokens import encode_prompt
    from tuner.measurement.measure import Stats

    requests = workload.requests()
    counts = [len(encode_prompt(engine.tokenizer, r)) for r in requests]
    order = sorted(range(len(requests)), key=counts.__getitem__)
    index = order[math.ceil(0.9 * (len(order) - 1))]  # the nearest-rank p90 prompt
    if workload.output_lengths is not None:
        output = math.ceil(Stats.from_samples(workload.output_lengths, "tokens").p90)
        source = "p90 of replayed reference-solution lengths"
    else:
        output, source = workload.max_new_tokens, "max_new_tokens (a real model's outputs vary)"
    lengths = ProbeLengths(
        prompt_tokens=counts[index],
        output_tokens=output,
        num_problems=workload.size,
        output_source=source,
    )
    return lengths, requests[index]

"""Reading a generation's peak memory and imposing a real limit, on CPU and on CUDA.

The probe (:mod:`tuner.measurement.probe`) needs three things from a device, written once
here rather than branched on in every caller:

* the weights' size and the memory still available;
* the exact peak above the current use while a block runs.  CUDA: torch's
  allocator statistics.  CPU: the kernel's resident-set high-water mark
  (``VmHWM``), reset just before the block through ``/proc/self/clear_refs``,
  so the peak is exact rather than sampled; without that file, a sampling
  thread (:class:`tuner.measure.PeakMemory`);
* a hard memory limit around a block, so that a batch that does not fit fails
  the way it would on a full machine.  CUDA: a per-process memory fraction.
  CPU: an address-space rlimit (``RLIMIT_AS``) raised back afterwards; the CPU
  allocator then fails with "can't allocate memory" instead of the kernel's
  OOM killer ending the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from engines.errors import is_out_of_memory

_CLEAR_REFS = "/proc/self/clear_refs"
_M_MMAP_THRESHOLD = -3  # mallopt(3) parameter number in glibc's malloc.h
_MMAP_THRESHOLD_BYTES = 128 << 10  # glibc's initial default
_RESET_PEAK_RSS = "5"  # see proc(5), /proc/pid/clear_refs


# Errors that mean "this batch does not fit"; anything else is a real failure.
@dataclass(frozen=True, slots=True, kw_only=True)
class BatchMeasurement:
    """One measured generation: its peak memory above the use before it, in bytes."""

    batch_size: int
    peak_bytes: int
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One confirmation generation under the memory limit."""

    batch_size: int
    ok: bool
    seconds: float
    error: str | None = None


class Memory:
    """One device's way to size, measure and limit memory."""

    name = "device"
    weights_method = ""
    peak_method = ""
    free_method = ""

    def weights_bytes(self, model: Any) -> int:
        raise NotImplementedError

    def available_bytes(self) -> int:
        """Memory free for generation now, beyond what this process already holds."""
        raise NotImplementedError

    def peak_above_now(self, run: Callable[[], object]) -> int:
        """Run ``run()`` and return its peak memory above the use just before it."""
        raise NotImplementedError

    @contextlib.contextmanager
    def limited(self, budget: int) -> Iterator[None]:
        """Allow at most ``budget`` more bytes inside the block (restored afterwards)."""
        raise NotImplementedError
        yield


class CpuMemory(Memory):
    name = "cpu"
    weights_method = "parameter and buffer bytes"
    free_method = "psutil available RAM"

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self._exact = _can_reset_peak_rss()
        self.peak_method = (
            "peak RSS (VmHWM reset per run)" if self._exact else "peak RSS (sampled every 5 ms)"
        )
        libc_name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(libc_name) if libc_name else None
        if self._libc is not None and hasattr(self._libc, "mallopt"):
            # glibc raises its mmap threshold as large blocks are freed, and then
            # serves tensors from heap holes that an address-space limit does not
            # see.  A fixed threshold maps every large tensor afresh and unmaps
            # it on free, so the limit and the peak both count live tensors.
            self._libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)

    def weights_bytes(self, model: Any) -> int:
        # The RSS growth of a load also counts the libraries it imports (about
        # 400 MB for torch and transformers), so count the tensors themselves.
        tensors = [*model.parameters(), *model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def available_bytes(self) -> int:
        import psutil

        return int(psutil.virtual_memory().available)

    def peak_above_now(self, run: Callable[[], object]) -> int:
        self._trim()
        before = self._process.memory_info().rss
        if not self._exact:
            from tuner.measurement.measure import PeakMemory

            with PeakMemory(device="cpu", interval_s=0.005) as peak:
                run()
            return max(0, int(peak.host_peak.value) - before)
        with open(_CLEAR_REFS, "w", encoding="ascii") as clear_refs:
            clear_refs.write(_RESET_PEAK_RSS)
        run()
        return max(0, _peak_rss() - before)

    @contextlib.contextmanager
    def limited(self, budget: int) -> Iterator[None]:
        import resource

        self._trim()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = self._process.memory_info().vms + budget
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

    def _trim(self) -> None:
        # Hand memory freed by earlier runs back to the kernel, so the next
        # baseline is what is live, not what glibc's heap kept.
        if self._libc is not None and hasattr(self._libc, "malloc_trim"):
            self._libc.malloc_trim(0)


class CudaMemory(Memory):
    name = "cuda"
    weights_method = "torch.cuda.memory_allocated after load"
    peak_method = "torch.cuda.max_memory_allocated"
    free_method = "torch.cuda.mem_get_info free"

    def weights_bytes(self, model: Any) -> int:
        import torch

        return int(torch.cuda.memory_allocated())

    def available_bytes(self) -> int:
        import torch

        torch.cuda.empty_cache()
        free, _ = torch.cuda.mem_get_info()
        # Blocks torch's cache still holds are free to this process too.
        return int(free + torch.cuda.memory_reserved() - torch.cuda.memory_allocated())

    def peak_above_now(self, run: Callable[[], object]) -> int:
        import torch

        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run()
        torch.cuda.synchronize()
        return max(0, int(torch.cuda.max_memory_allocated()) - before)

    @contextlib.contextmanager
    def limited(self, budget: int) -> Iterator[None]:
        import torch

        torch.cuda.empty_cache()
        _, total = torch.cuda.mem_get_info()
        allowed = torch.cuda.memory_allocated() + budget
        torch.cuda.set_per_process_memory_fraction(min(1.0, allowed / total))
        try:
            yield
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0)
            torch.cuda.empty_cache()


def memory_for(device: Any) -> Memory:
    """The :class:`Memory` of a ``torch.device``."""
    return CudaMemory() if device.type == "cuda" else CpuMemory()


def measure(memory: Memory, engine: Any, requests: Sequence[Any]) -> BatchMeasurement:
    """Generate ``requests`` as one batch and record its peak memory."""
    start = time.perf_counter()
    peak = memory.peak_above_now(lambda: engine.generate(requests))
    return BatchMeasurement(
        batch_size=len(requests), peak_bytes=peak, seconds=time.perf_counter() - start
    )


def attempt(memory: Memory, engine: Any, requests: Sequence[Any], budget: int) -> Attempt:
    """Generate ``requests`` as one batch under ``budget``; an OOM is a failed attempt.

    The engine splits a batch that runs out of memory and retries the halves;
    for a confirmation that split is a failure too, so it is counted.
    """
    splits = engine.stats.num_oom_splits
    start = time.perf_counter()
    error: str | None = None
    try:
        with memory.limited(budget):
            engine.generate(requests)
    except Exception as caught:  # noqa: BLE001 - filtered just below
        if not is_out_of_memory(caught):
            raise
        error = f"{type(caught).__name__}: {_first_line(caught)}"
    if error is None and engine.stats.num_oom_splits > splits:
        error = "out of memory: the engine had to split the batch"
    return Attempt(
        batch_size=len(requests),
        ok=error is None,
        seconds=time.perf_counter() - start,
        error=error,
    )


def kv_bytes_per_sequence(model: Any, tokens: int) -> int | None:
    """KV-cache bytes of one sequence of ``tokens`` tokens, from the model config."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
    config = config or model.config
    try:
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        element = next(model.parameters()).element_size()
        return 2 * config.num_hidden_layers * kv_heads * head_dim * element * tokens
    except (AttributeError, StopIteration, TypeError):
        return None


def _can_reset_peak_rss() -> bool:
    try:
        with open(_CLEAR_REFS, "w", encoding="ascii") as clear_refs:
            clear_refs.write(_RESET_PEAK_RSS)
        return _peak_rss() > 0
    except OSError:
        return False


def _peak_rss() -> int:
    """``VmHWM`` of this process in bytes (0 when unreadable)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    # "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't ..."
    text = text.split("DefaultCPUAllocator: ", 1)[-1]
    return text.splitlines()[0][:200] if text else "no message"

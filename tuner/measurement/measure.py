"""Measurements as value objects with units, and the three trackers that take them.

* :class:`LatencyTracker` times blocks (``with tracker.track(): ...``) and
  derives :class:`Stats` and throughput.  It synchronises the GPU around each
  block when CUDA is in use, otherwise it reads ``perf_counter`` alone: that
  choice is made here once, for every caller.
* :class:`PeakMemory` records the peak memory of a block: device memory
  (``torch.cuda.max_memory_allocated``) when CUDA is in use, and always this
  process's peak resident set size.
* :class:`GpuSampler` samples GPU utilisation, memory and power in a background
  thread through NVML and reports energy; without a GPU every value is ``None``.

Example::

    tracker = LatencyTracker()
    with tracker.track(), PeakMemory() as memory, GpuSampler() as gpu:
        engine.generate(requests)
    tracker.throughput(len(requests), "problems/s")  # Measurement(12.5, "problems/s")
    memory.peak, gpu.usage.energy
"""

from __future__ import annotations

import math
import resource
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

Device = Literal["auto", "cuda", "cpu"]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measured value and its unit, e.g. ``Measurement(12.5, "problems/s")``."""

    value: float
    unit: str

    def __post_init__(self) -> None:
        if not self.unit:
            raise ValueError("Measurement.unit must be non-empty")

    def __str__(self) -> str:
        return f"{self.value:.4g} {self.unit}"

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit}


@dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """Summary of samples in one unit; percentiles interpolate linearly (as numpy)."""

    unit: str
    count: int
    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float

    @classmethod
    def from_samples(cls, samples: Sequence[float], unit: str) -> Stats:
        """Summarise ``samples``.

        Raises:
            ValueError: ``samples`` is empty.
        """
        if not samples:
            raise ValueError("Stats.from_samples needs at least one sample")
        ordered = sorted(samples)
        return cls(
            unit=unit,
            count=len(ordered),
            mean=math.fsum(ordered) / len(ordered),
            p50=_percentile(ordered, 50),
            p90=_percentile(ordered, 90),
            p99=_percentile(ordered, 99),
            min=ordered[0],
            max=ordered[-1],
        )

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


def _percentile(ordered: Sequence[float], q: float) -> float:
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cuda_in_use(device: Device = "auto") -> bool:
    """Whether measurements should treat CUDA as the device.

    ``"auto"`` answers yes only when this process has already initialised CUDA
    through torch: if it has not, no GPU work of ours can be pending, and we
    avoid importing torch or creating a CUDA context just to find out.
    """
    if device == "cpu":
        return False
    if device == "cuda":
        return True
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()


def synchronize(device: Device = "auto") -> None:
    """Wait for pending GPU work when CUDA is in use; a no-op otherwise."""
    if cuda_in_use(device):
        import torch

        torch.cuda.synchronize()


class LatencyTracker:
    """Times blocks of work; the clock starts and stops on a synchronised device.

    Not thread-safe: one tracker per measuring thread.
    """

    def __init__(self, device: Device = "auto") -> None:
        self.device = device
        self._durations: list[float] = []

    @contextmanager
    def track(self) -> Iterator[None]:
        """Time the ``with`` block and record its duration in seconds."""
        synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self._durations.append(time.perf_counter() - start)

    @property
    def durations(self) -> tuple[float, ...]:
        """Every tracked duration, in seconds, oldest first."""
        return tuple(self._durations)

    def total(self) -> Measurement:
        return Measurement(math.fsum(self._durations), "s")

    def stats(self) -> Stats:
        """Latency statistics in seconds (raises ``ValueError`` before any block)."""
        return Stats.from_samples(self._durations, "s")

    def throughput(self, count: float, unit: str) -> Measurement:
        """``count`` items over the total tracked time, e.g. ``(640, "tokens/s")``.

        Raises:
            ValueError: nothing was tracked yet.
        """
        seconds = math.fsum(self._durations)
        if seconds <= 0:
            raise ValueError("throughput needs at least one tracked block")
        return Measurement(count / seconds, unit)

    def reset(self) -> None:
        self._durations.clear()


class _Sampler:
    """Calls ``sample()`` every ``interval_s`` in a daemon thread until stopped.

    Waits on an :class:`threading.Event`, so it sleeps between samples instead of
    spinning on the cores it is measuring.
    """

    def __init__(self, sample: Any, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self._sample = sample
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="infertune-sampler", daemon=True)

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._sample()


def _max_rss_bytes() -> int:
    # ru_maxrss is the process's lifetime high-water mark: KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakMemory:
    """Context manager recording the peak memory used inside its block.

    After the block, :attr:`host_peak` is this process's peak resident set size
    (``"B"``) and :attr:`device_peak` the peak CUDA memory allocated by torch
    (``None`` without CUDA); :attr:`peak` is the device one when CUDA is in use.
    Memory that vLLM reserves outside torch's allocator shows in
    :class:`GpuSampler`'s ``peak_memory_used`` instead.
    """

    def __init__(self, device: Device = "auto", interval_s: float = 0.05) -> None:
        import psutil

        self.device = device
        self._process = psutil.Process()
        self._interval_s = interval_s
        self.host_peak: Measurement | None = None
        self.device_peak: Measurement | None = None

    def _sample_rss(self) -> None:
        self._sampled_rss = max(self._sampled_rss, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        if cuda_in_use(self.device):
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._max_rss_before = _max_rss_bytes()
        self._sampled_rss = 0
        self._sampler = _Sampler(self._sample_rss, self._interval_s)
        self._sampler.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sampler.stop()
        max_rss = _max_rss_bytes()
        # A new lifetime high-water mark was set inside the block, so it is exact;
        # otherwise the block stayed below an earlier peak and only sampling sees it.
        peak = max_rss if max_rss > self._max_rss_before else self._sampled_rss
        self.host_peak = Measurement(float(peak), "B")
        if cuda_in_use(self.device):
            import torch

            synchronize(self.device)
            self.device_peak = Measurement(float(torch.cuda.max_memory_allocated()), "B")

    @property
    def peak(self) -> Measurement | None:
        """The device peak when CUDA is in use, else the host peak."""
        return self.device_peak or self.host_peak


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuUsage:
    """What :class:`GpuSampler` saw; every value is ``None`` without a GPU.

    Utilisation is the mean over samples and GPUs (``"%"``), memory the peak
    used on any one GPU as NVML reports it (``"B"``, includes memory reserved
    outside torch, e.g. vLLM's KV cache), energy the total over the GPUs
    (``"J"``) from the driver's energy counter when the GPU has one, else
    integrated from power samples.
    """

    num_gpus: int
    num_samples: int
    duration: Measurement
    mean_utilization: Measurement | None = None
    peak_memory_used: Measurement | None = None
    energy: Measurement | None = None
    mean_power: Measurement | None = None

    def energy_per(self, count: float, unit: str = "J/problem") -> Measurement | None:
        """Energy divided by ``count`` items, or ``None`` without energy data."""
        if self.energy is None or count <= 0:
            return None
        return Measurement(self.energy.value / count, unit)


class GpuSampler:
    """Context manager sampling every visible NVML GPU in a background thread.

    Without NVML or a GPU it starts no thread and reports ``None`` values, so
    callers need no branch of their own.  Read :attr:`usage` after the block.
    ``indices`` are NVML indices (they ignore ``CUDA_VISIBLE_DEVICES``).
    """

    def __init__(self, *, interval_s: float = 0.1, indices: Sequence[int] | None = None) -> None:
        self._indices = indices
        self._interval_s = interval_s
        self._handles: list[Any] = []
        self._samples: list[tuple[float, float, int, float | None]] = []
        self.usage: GpuUsage | None = None

    @property
    def is_available(self) -> bool:
        """Whether NVML found a GPU (known once the block has started)."""
        return bool(self._handles)

    def __enter__(self) -> GpuSampler:
        self._handles = _nvml_handles(self._indices)
        self._start = time.perf_counter()
        self._energy_start = _total_energy_mj(self._handles)
        self._samples = []
        self._sampler = _Sampler(self._sample, self._interval_s)
        if self._handles:
            self._sampler.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        duration = Measurement(time.perf_counter() - self._start, "s")
        if not self._handles:
            self.usage = GpuUsage(num_gpus=0, num_samples=0, duration=duration)
            return
        self._sampler.stop()
        energy_end = _total_energy_mj(self._handles)
        import pynvml

        pynvml.nvmlShutdown()
        if not self._samples:
            self.usage = GpuUsage(num_gpus=len(self._handles), num_samples=0, duration=duration)
            return
        self.usage = self._summarise(duration, energy_end)

    def _sample(self) -> None:
        import pynvml

        utilization, memory, power = 0.0, 0, 0.0
        has_power = True
        try:
            for handle in self._handles:
                utilization += pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
                memory = max(memory, int(pynvml.nvmlDeviceGetMemoryInfo(handle).used))
                try:
                    power += pynvml.nvmlDeviceGetPowerUsage(handle) / 1000  # mW -> W
                except pynvml.NVMLError:
                    has_power = False
        except pynvml.NVMLError:
            return  # a transient driver error loses one sample, not the measurement
        watts = power if has_power else None
        self._samples.append((time.perf_counter(), utilization / len(self._handles), memory, watts))

    def _summarise(self, duration: Measurement, energy_end_mj: float | None) -> GpuUsage:
        times, utilizations, memories, watts = zip(*self._samples, strict=True)
        energy_j: float | None = None
        if self._energy_start is not None and energy_end_mj is not None:
            energy_j = (energy_end_mj - self._energy_start) / 1000
        elif None not in watts:
            energy_j = sum(  # trapezoid rule over the power samples
                (t1 - t0) * (w0 + w1) / 2
                for t0, t1, w0, w1 in zip(times, times[1:], watts, watts[1:], strict=False)
            )
        power = None if energy_j is None or duration.value <= 0 else energy_j / duration.value
        return GpuUsage(
            num_gpus=len(self._handles),
            num_samples=len(self._samples),
            duration=duration,
            mean_utilization=Measurement(math.fsum(utilizations) / len(utilizations), "%"),
            peak_memory_used=Measurement(float(max(memories)), "B"),
            energy=None if energy_j is None else Measurement(energy_j, "J"),
            mean_power=None if power is None else Measurement(power, "W"),
        )


def _nvml_handles(indices: Sequence[int] | None) -> list[Any]:
    """NVML device handles (NVML left initialised), or ``[]`` without NVML or GPUs."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError when the driver library is absent
        return []
    try:
        chosen = range(pynvml.nvmlDeviceGetCount()) if indices is None else indices
        handles = [pynvml.nvmlDeviceGetHandleByIndex(index) for index in chosen]
    except pynvml.NVMLError:
        handles = []
    if not handles:
        pynvml.nvmlShutdown()
    return handles


def _total_energy_mj(handles: Sequence[Any]) -> float | None:
    """Sum of the GPUs' energy counters in mJ; ``None`` if any GPU lacks one (pre-Volta)."""
    if not handles:
        return None
    import pynvml

    try:
        return float(sum(pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in handles))
    except pynvml.NVMLError:
        return None

"""Measurement value objects and the trackers, on this machine's real clock and memory."""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from tests.conftest import REPO
from tuner.measurement import measure
from tuner.measurement.measure import (
    GpuSampler,
    GpuUsage,
    LatencyTracker,
    Measurement,
    PeakMemory,
    Stats,
    cuda_in_use,
)

MIB = 1 << 20


def test_measurement_carries_its_unit() -> None:
    m = Measurement(12.5, "problems/s")
    assert str(m) == "12.5 problems/s"
    assert m.as_dict() == {"value": 12.5, "unit": "problems/s"}
    with pytest.raises(ValueError, match="unit"):
        Measurement(1.0, "")


def test_stats_percentiles_match_numpy() -> None:
    samples = [random.Random(i).expovariate(1.0) for i in range(37)]
    stats = Stats.from_samples(samples, "s")
    for name, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        assert getattr(stats, name) == pytest.approx(np.percentile(samples, q))
    assert stats.mean == pytest.approx(np.mean(samples))
    assert (stats.min, stats.max, stats.count, stats.unit) == (min(samples), max(samples), 37, "s")
    assert Stats.from_samples([3.0], "ms").p99 == 3.0
    with pytest.raises(ValueError, match="at least one"):
        Stats.from_samples([], "s")


def test_latency_tracker_times_blocks_and_derives_throughput() -> None:
    tracker = LatencyTracker()
    for _ in range(3):
        with tracker.track():
            time.sleep(0.02)
    assert len(tracker.durations) == 3
    assert all(d >= 0.02 for d in tracker.durations)
    total = tracker.total()
    assert total.unit == "s" and total.value == pytest.approx(sum(tracker.durations))
    throughput = tracker.throughput(30, "problems/s")
    assert throughput == Measurement(30 / total.value, "problems/s")
    assert tracker.stats().count == 3
    tracker.reset()
    with pytest.raises(ValueError, match="tracked"):
        tracker.throughput(1, "problems/s")


def test_latency_tracker_records_a_failing_block() -> None:
    tracker = LatencyTracker()
    with pytest.raises(RuntimeError), tracker.track():
        raise RuntimeError("boom")
    assert len(tracker.durations) == 1


def test_cuda_is_not_in_use_without_a_gpu() -> None:
    assert cuda_in_use("cpu") is False
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert cuda_in_use("auto") is False
    measure.synchronize()  # a no-op, must not raise


def test_peak_memory_sees_an_allocation_inside_the_block() -> None:
    with PeakMemory(interval_s=0.01) as memory:
        block = bytearray(256 * MIB)
        block[::4096] = b"x" * len(block[::4096])  # touch every page so it is resident
        time.sleep(0.05)
        del block
    assert memory.host_peak is not None and memory.host_peak.unit == "B"
    assert memory.host_peak.value >= 256 * MIB
    assert memory.device_peak is None
    assert memory.peak == memory.host_peak


def test_peak_memory_below_an_earlier_peak_uses_samples() -> None:
    # In a fresh interpreter, as trials run: the 400 MiB block must set the
    # process's lifetime high-water mark, which a long test process (engines
    # loaded by earlier tests) may already hold above it.
    code = (
        "from tuner.measurement.measure import PeakMemory\n"
        "MIB = 1 << 20\n"
        "with PeakMemory(interval_s=0.01) as big:\n"
        "    block = bytearray(400 * MIB)\n"
        "    block[::4096] = b'x' * len(block[::4096])\n"
        "    import time; time.sleep(0.05)\n"  # held long enough for samples too
        "    del block\n"
        "with PeakMemory(interval_s=0.01) as small:\n"
        "    import time; time.sleep(0.03)\n"
        "print(big.peak.value, small.peak.value)\n"
    )
    big, small = (float(v) for v in _run_fresh(code).split())
    # The lifetime high-water mark is now above anything the second block does,
    # so only sampling can report the smaller peak.
    assert small < big - 300 * MIB


def test_samplers_sleep_between_samples_and_stop_their_thread() -> None:
    # In a fresh interpreter: process_time counts every thread of the process,
    # and threads left by other tests (engines, tokenizers) would be counted too.
    code = (
        "import threading, time\n"
        "from tuner.measurement.measure import GpuSampler, PeakMemory\n"
        "cpu_start = time.process_time()\n"
        "with PeakMemory(interval_s=0.01), GpuSampler(interval_s=0.01):\n"
        "    time.sleep(0.5)\n"
        "print(time.process_time() - cpu_start)\n"
        "print(sum(t.name == 'infertune-sampler' for t in threading.enumerate()))\n"
    )
    cpu_seconds, num_left = _run_fresh(code).split()
    assert float(cpu_seconds) < 0.25  # a busy-wait would use ~0.5 s
    assert num_left == "0"


def test_gpu_sampler_without_a_gpu_reports_none() -> None:
    if measure._nvml_handles(None):
        pytest.skip("this machine has an NVML GPU")
    with GpuSampler(interval_s=0.01) as sampler:
        time.sleep(0.02)
    assert sampler.is_available is False
    usage = sampler.usage
    assert usage.num_gpus == 0 and usage.num_samples == 0
    assert usage.duration.value >= 0.02
    assert (usage.mean_utilization, usage.peak_memory_used, usage.energy, usage.mean_power) == (
        None,
        None,
        None,
        None,
    )
    assert usage.energy_per(10) is None


def test_gpu_sampler_without_pynvml(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with GpuSampler() as sampler:
        pass
    assert sampler.usage.num_gpus == 0 and sampler.usage.energy is None


def test_energy_per_item() -> None:
    usage = GpuUsage(
        num_gpus=1,
        num_samples=2,
        duration=Measurement(2.0, "s"),
        energy=Measurement(500.0, "J"),
    )
    assert usage.energy_per(50) == Measurement(10.0, "J/problem")
    assert usage.energy_per(0) is None


def test_sampler_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"), PeakMemory(interval_s=0):
        pass


class FakeNvml(types.ModuleType):
    """A stand-in for the NVML driver library (this CI machine has no GPU).

    It replaces only the lowest layer, the ``pynvml`` calls, so the sampler's own
    logic (threading, energy from the counter or from power, summaries) runs for real.
    """

    class NVMLError(Exception):
        pass

    def __init__(self, *, num_gpus: int = 1, has_energy_counter: bool = True) -> None:
        super().__init__("pynvml")
        self.num_gpus = num_gpus
        self.has_energy_counter = has_energy_counter
        self.energy_mj = 1_000_000
        self.is_initialised = False

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        self.is_initialised = True

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.is_initialised = False

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return self.num_gpus

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:  # noqa: N802
        return b"NVIDIA H100 80GB HBM3"  # old pynvml releases return bytes

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> types.SimpleNamespace:  # noqa: N802
        return types.SimpleNamespace(total=81559 << 20, free=(70 << 30), used=(10 << 30) + handle)

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:  # noqa: N802
        return 12040

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> types.SimpleNamespace:  # noqa: N802
        return types.SimpleNamespace(gpu=40 + 20 * handle)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:  # noqa: N802
        return 300_000  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:  # noqa: N802
        if not self.has_energy_counter:
            raise self.NVMLError("Not Supported")
        self.energy_mj += 250_000  # each read: +250 J
        return self.energy_mj


def test_gpu_sampler_summarises_nvml_readings(monkeypatch) -> None:
    nvml = FakeNvml(num_gpus=2)
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with GpuSampler(interval_s=0.01) as sampler:
        time.sleep(0.05)
    usage = sampler.usage
    assert sampler.is_available and usage.num_gpus == 2 and usage.num_samples >= 2
    assert usage.mean_utilization == Measurement(50.0, "%")
    assert usage.peak_memory_used == Measurement(float((10 << 30) + 1), "B")
    # Two GPUs read once at the start and once at the end: 4 reads of +250 J each,
    # the end sum exceeds the start sum by 2 GPUs x 2 reads x 250 J.
    assert usage.energy == Measurement(1000.0, "J")
    assert usage.mean_power.value == pytest.approx(1000.0 / usage.duration.value)
    assert usage.energy_per(100) == Measurement(10.0, "J/problem")
    assert nvml.is_initialised is False  # shut down after the block


def test_gpu_sampler_integrates_power_without_an_energy_counter(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(has_energy_counter=False))
    with GpuSampler(interval_s=0.01) as sampler:
        time.sleep(0.1)
    usage = sampler.usage
    assert usage.mean_power.value == pytest.approx(300.0, rel=0.05)
    assert usage.energy.value == pytest.approx(300.0 * usage.duration.value, rel=0.05)


requires_cuda = pytest.mark.skipif(
    not (importlib.util.find_spec("torch") and __import__("torch").cuda.is_available()),
    reason="needs a CUDA GPU",
)


@pytest.mark.gpu
@requires_cuda
def test_trackers_on_a_real_gpu() -> None:
    import torch

    x = torch.randn(4096, 4096, device="cuda")
    assert cuda_in_use("auto")
    tracker = LatencyTracker()
    with tracker.track(), PeakMemory() as memory, GpuSampler(interval_s=0.05) as sampler:
        for _ in range(50):
            y = x @ x
        del y
    assert memory.device_peak is not None and memory.device_peak.value >= 2 * 4096 * 4096 * 4
    assert memory.peak == memory.device_peak
    usage = sampler.usage
    assert usage.num_gpus >= 1 and usage.mean_utilization is not None
    assert usage.peak_memory_used.value >= memory.device_peak.value
    assert usage.energy is None or usage.energy.value > 0
    assert tracker.total().value > 0


def _run_fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter (no threads or memory left by other tests)."""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=True)  # fmt: skip
    return done.stdout

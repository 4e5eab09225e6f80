"""A throughput regression gate over two pytest-benchmark JSON files.

pytest-benchmark's own ``--benchmark-compare-fail`` gates on time only; our
benchmarks care about throughput, which they store in ``extra_info``.

Convention for benchmark authors: put throughput (bigger is better) in
``benchmark.extra_info`` under a key ending in ``_per_s``, e.g.
``extra_info["tokens_per_s"] = 1234.5``.  For each benchmark present in both
files (matched by ``fullname``) the gate compares the first key present in both,
preferring ``tokens_per_s``, then ``problems_per_s``, then other ``*_per_s``
keys in alphabetical order.  A benchmark without such a key is compared on
operations per second (``stats.ops``, i.e. 1 / mean time).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.limits import read_text_limited
from engines.errors import ConfigError, InfertuneError
from tuner.measurement.measure import Measurement

PREFERRED_KEYS = ("tokens_per_s", "problems_per_s")
OPS = "ops"


class GateError(InfertuneError):
    """The gate's input is unusable: missing file, not pytest-benchmark JSON, bad threshold."""


def parse_max_drop(text: str) -> float:
    """``"10%"`` or ``"0.1"`` -> 0.1.

    Raises:
        GateError: not a percentage or fraction in [0, 100%).
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*", text)
    value = None if match is None else float(match.group(1)) / (100 if match.group(2) else 1)
    if value is None or not 0 <= value < 1:
        raise GateError(
            f"--max-drop must be a percentage like 10% or a fraction like 0.1, got {text!r}"
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """One benchmark's throughput in the baseline and current runs."""

    name: str
    metric: str
    baseline: Measurement
    current: Measurement

    @property
    def change(self) -> float:
        """Relative change, e.g. -0.2 for a 20% drop."""
        return self.current.value / self.baseline.value - 1

    def is_regression(self, max_drop: float) -> bool:
        return self.change < -max_drop


@dataclass(frozen=True, slots=True, kw_only=True)
class GateReport:
    """Every comparison, and the benchmarks found in one file only."""

    max_drop: float
    comparisons: tuple[Comparison, ...]
    only_in_baseline: tuple[str, ...] = ()
    only_in_current: tuple[str, ...] = ()

    @property
    def regressions(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.is_regression(self.max_drop))

    @property
    def passed(self) -> bool:
        return not self.regressions


def load_benchmarks(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The benchmarks of a pytest-benchmark JSON file, by ``fullname``.

    Raises:
        GateError: missing file, invalid JSON, or not a pytest-benchmark file.
    """
    path = Path(path)
    try:
        data = json.loads(read_text_limited(path, what="benchmark file"))
    except FileNotFoundError:
        raise GateError(f"benchmark file {path} does not exist") from None
    except (OSError, ConfigError, json.JSONDecodeError) as error:
        raise GateError(f"cannot read {path} as JSON: {error}") from None
    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
    if not isinstance(benchmarks, list):
        raise GateError(
            f"{path} is not a pytest-benchmark JSON file (write one with --benchmark-json=FILE)"
        )
    for index, benchmark in enumerate(benchmarks):
        problem = _benchmark_problem(benchmark)
        if problem:
            raise GateError(f"{path}: benchmarks[{index}] {problem}; is it pytest-benchmark JSON?")
    return {b.get("fullname") or b["name"]: b for b in benchmarks}


def _benchmark_problem(benchmark: object) -> str | None:
    """What is wrong with one entry of a benchmark file's ``benchmarks`` list, if anything."""
    if not isinstance(benchmark, dict):
        return "is not an object"
    if not isinstance(benchmark.get("name"), str):
        return "has no string 'name'"
    if not isinstance(benchmark.get("fullname", ""), str | None):
        return "has a 'fullname' that is not a string"
    if not isinstance(benchmark.get("stats"), dict):
        return "has no 'stats' object"
    if not isinstance(benchmark.get("extra_info", {}), dict | None):
        return "has an 'extra_info' that is not an object"
    return None


def _throughput_keys(extra_info: dict[str, Any]) -> list[str]:
    keys = sorted(k for k in extra_info if k.endswith("_per_s"))
    return [k for k in PREFERRED_KEYS if k in keys] + [k for k in keys if k not in PREFERRED_KEYS]


def _measure(name: str, benchmark: dict[str, Any], metric: str, source: Path) -> Measurement:
    if metric == OPS:
        stats = benchmark["stats"]
        value = stats.get("ops") or (1 / stats["mean"] if stats.get("mean") else None)
        unit = "ops/s"
    else:
        value, unit = benchmark["extra_info"][metric], metric.removesuffix("_per_s") + "/s"
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise GateError(f"{source}: benchmark {name} has no usable {metric} value ({value!r})")
    return Measurement(float(value), unit)


def compare(
    baseline: str | os.PathLike[str], current: str | os.PathLike[str], max_drop: float
) -> GateReport:
    """Compare the throughput of every benchmark found in both files.

    Raises:
        GateError: a file is unusable, no benchmark is in both, or a baseline
            throughput is zero.
    """
    before, after = load_benchmarks(baseline), load_benchmarks(current)
    common = sorted(before.keys() & after.keys())
    if not common:
        raise GateError(f"{baseline} and {current} have no benchmark in common")
    comparisons = []
    for name in common:
        old, new = before[name], after[name]
        new_keys = set(_throughput_keys(new.get("extra_info") or {}))
        shared = [k for k in _throughput_keys(old.get("extra_info") or {}) if k in new_keys]
        metric = shared[0] if shared else OPS
        comparison = Comparison(
            name=name,
            metric=metric,
            baseline=_measure(name, old, metric, Path(baseline)),
            current=_measure(name, new, metric, Path(current)),
        )
        if comparison.baseline.value == 0:
            raise GateError(f"{baseline}: benchmark {name} has a zero baseline {metric}")
        comparisons.append(comparison)
    return GateReport(
        max_drop=max_drop,
        comparisons=tuple(comparisons),
        only_in_baseline=tuple(sorted(before.keys() - after.keys())),
        only_in_current=tuple(sorted(after.keys() - before.keys())),
    )

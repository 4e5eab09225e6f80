"""The throughput gate, on JSON files written by a real pytest-benchmark run."""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from commands import bench_gate as gate_cli
from commands.main import run_command
from tuner.gates.throughput import GateError, compare, load_benchmarks, parse_max_drop

SUITE = """
import pytest


def test_decode(benchmark):
    result = benchmark.pedantic(sum, args=(range(1000),), rounds=3, iterations=1)
    benchmark.extra_info["tokens_per_s"] = 1000.0
    benchmark.extra_info["problems_per_s"] = 10.0
    assert result == 499500


@pytest.mark.parametrize("size", ["small"])
def test_plain(benchmark, size):
    benchmark.pedantic(sorted, args=(list(range(100)),), rounds=3, iterations=1)
"""


@pytest.fixture(scope="module")
def baseline_file(tmp_path_factory) -> Path:
    """A pytest-benchmark JSON written by actually running a two-benchmark suite."""
    root = tmp_path_factory.mktemp("bench")
    (root / "test_suite.py").write_text(SUITE)
    (root / "pytest.ini").write_text("[pytest]\n")  # keeps the repo's addopts out
    out = root / "baseline.json"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "pytest.ini",
         "test_suite.py", f"--benchmark-json={out}"],
        cwd=root, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out


def _scaled(baseline: Path, target: Path, factor: float, *, ops_only: bool = False) -> Path:
    """A "current" run: throughput scaled by ``factor`` (extra_info, or mean time)."""
    data = json.loads(baseline.read_text())
    for bench in data["benchmarks"]:
        if ops_only or not bench["extra_info"]:
            bench["stats"]["mean"] /= factor
            bench["stats"]["ops"] *= factor
        for key in bench["extra_info"] if not ops_only else ():
            bench["extra_info"][key] *= factor
    target.write_text(json.dumps(data))
    return target


def _gate(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    gate_cli.add_arguments(parser)
    return run_command("commands.bench_gate", parser.parse_args(argv), "infertune bench-gate")


def test_real_file_is_read_with_throughput_keys(baseline_file: Path) -> None:
    benchmarks = load_benchmarks(baseline_file)
    assert len(benchmarks) == 2 and any(name.endswith("[small]") for name in benchmarks)
    report = compare(baseline_file, baseline_file, 0.1)
    metrics = {c.name.rsplit("::", 1)[1]: (c.metric, c.baseline.unit) for c in report.comparisons}
    assert metrics == {
        "test_decode": ("tokens_per_s", "tokens/s"),
        "test_plain[small]": ("ops", "ops/s"),
    }
    assert report.passed and all(c.change == 0 for c in report.comparisons)


def test_gate_fails_on_a_20_percent_drop(
    baseline_file: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich would truncate long names at 80
    current = _scaled(baseline_file, tmp_path / "current.json", 0.80)
    assert (
        _gate("--baseline", str(baseline_file), "--current", str(current), "--max-drop", "10%") == 1
    )
    report = compare(baseline_file, current, 0.10)
    assert len(report.regressions) == 2
    assert all(c.change == pytest.approx(-0.20) for c in report.comparisons)
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "test_plain[small]" in out  # names are not rich markup


def test_gate_passes_on_a_2_percent_drop(baseline_file: Path, tmp_path: Path, capsys) -> None:
    current = _scaled(baseline_file, tmp_path / "current.json", 0.98)
    assert (
        _gate("--baseline", str(baseline_file), "--current", str(current), "--max-drop", "10%") == 0
    )
    assert "gate passed" in capsys.readouterr().out


def test_faster_run_passes_and_time_fallback_is_bigger_is_better(
    baseline_file: Path, tmp_path: Path
) -> None:
    slower = _scaled(baseline_file, tmp_path / "slower.json", 0.5, ops_only=True)
    report = compare(baseline_file, slower, 0.1)
    by_metric = {c.metric: c.is_regression(0.1) for c in report.comparisons}
    assert by_metric == {"tokens_per_s": False, "ops": True}
    assert compare(baseline_file, _scaled(baseline_file, tmp_path / "f.json", 1.5), 0.1).passed


def test_benchmarks_in_one_file_only_are_listed(baseline_file: Path, tmp_path: Path) -> None:
    data = json.loads(baseline_file.read_text())
    extra = copy.deepcopy(data["benchmarks"][0])
    extra["fullname"] += "_new"
    data["benchmarks"] = [data["benchmarks"][1], extra]
    current = tmp_path / "current.json"
    current.write_text(json.dumps(data))
    report = compare(baseline_file, current, 0.1)
    assert [c.metric for c in report.comparisons] == ["ops"]
    assert report.only_in_baseline[0].endswith("test_decode")
    assert report.only_in_current[0].endswith("test_decode_new")


@pytest.mark.parametrize(
    ("text", "value"), [("10%", 0.10), ("2.5%", 0.025), ("0.1", 0.1), ("0", 0.0), (" 5 %", 0.05)]
)
def test_parse_max_drop(text: str, value: float) -> None:
    assert parse_max_drop(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["10", "ten", "-5%", "100%", ""])
def test_bad_max_drop_exits_2(baseline_file: Path, text: str, capsys) -> None:
    with pytest.raises(GateError, match="max-drop"):
        parse_max_drop(text)
    args = ("--baseline", str(baseline_file), "--current", str(baseline_file), f"--max-drop={text}")
    assert _gate(*args) == 2
    assert "--max-drop" in capsys.readouterr().err


def test_bad_inputs_exit_2_with_one_line(baseline_file: Path, tmp_path: Path, capsys) -> None:
    not_json = tmp_path / "broken.json"
    not_json.write_text('{"benchmarks": [')
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"results": [1, 2]}))
    other = json.loads(baseline_file.read_text())
    for bench in other["benchmarks"]:
        bench["fullname"] = "elsewhere::" + bench["name"]
    disjoint = tmp_path / "disjoint.json"
    disjoint.write_text(json.dumps(other))
    cases = {
        tmp_path / "missing.json": "does not exist",
        not_json: "cannot read",
        foreign: "not a pytest-benchmark JSON",
        disjoint: "no benchmark in common",
    }
    for current, message in cases.items():
        assert _gate("--baseline", str(baseline_file), "--current", str(current)) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err

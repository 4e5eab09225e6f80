"""The probe on synthetic:tiny on this CPU: a measured memory model, a confirmation under
a real memory limit (an address-space rlimit), shrinks when it fails, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from commands.main import main
from engines.errors import ConfigError
from tests.conftest import REPO
from tuner.measurement.probe import ProbeError, ProbeLengths, ProbeResult, _fit, run_probe
from tuner.measurement.probe_memory import BatchMeasurement

MIB = 1 << 20
TINY = {"dataset": "synthetic", "num_problems": 8}
LENGTHS = ProbeLengths(prompt_tokens=100, output_tokens=100, num_problems=8, output_source="x")


@pytest.fixture(scope="module")
def generous() -> ProbeResult:
    """A probe whose limit (1 GiB beyond the weights) leaves room for the whole workload."""
    return run_probe("synthetic:tiny", memory_limit=2**30, **TINY)


def test_memory_model_is_measured_and_consistent(generous: ProbeResult) -> None:
    r = generous
    assert r.device == "cpu" and r.dtype == "float32"
    assert r.lengths.prompt_tokens > 10 and r.lengths.output_tokens > 10
    assert r.lengths.output_source == "p90 of replayed reference-solution lengths"
    # tiny: 2 layers x (k, v) x 1 KV head x head_dim 32 x 4 bytes per token.
    assert r.kv_bytes_per_sequence == 512 * (r.lengths.prompt_tokens + r.lengths.output_tokens)
    assert [m.batch_size for m in r.measurements] == [1, 2, 4]
    assert r.measurements[-1].peak_bytes > r.measurements[0].peak_bytes > 0
    assert r.per_sequence_bytes >= r.kv_bytes_per_sequence
    assert r.available_bytes == 2**30 - r.weights_bytes
    assert r.available_method == "memory_limit"
    assert r.weights_bytes == sum(
        t.numel() * t.element_size() for t in _tiny_tensors()
    )  # the parameter count, not the RSS growth of a load


def test_generous_limit_confirms_the_prediction(generous: ProbeResult) -> None:
    r = generous
    assert r.memory_max_batch > r.batch_cap == 8  # capped at the workload size, and said so
    assert any("capped at 8" in note for note in r.notes)
    assert r.predicted_max_batch == r.confirm_start == r.confirmed_batch == 8
    assert [(a.batch_size, a.ok) for a in r.attempts] == [(8, True)]
    assert r.shrinks == ()


def test_json_record_has_every_field(generous: ProbeResult) -> None:
    data = json.loads(json.dumps(generous.as_dict()))
    for key in ("hardware", "hardware_id", "weights_bytes", "per_sequence_bytes",
                "intercept_bytes", "measurements", "available_bytes", "predicted_max_batch",
                "confirmed_batch", "shrinks", "attempts"):  # fmt: skip
        assert key in data, key
    assert data["hardware"]["ram_bytes"] > 0 and data["hardware_id"].startswith("cpu-")
    assert data["predicted_max_batch"] >= data["confirmed_batch"] >= 1


def test_tight_limit_shrinks_until_a_real_generation_fits(generous: ProbeResult) -> None:
    # 4 MiB beyond the weights cannot hold 64 sequences (~0.5 MiB each), so the
    # first confirmation fails under the rlimit and the size shrinks by 10% a
    # step.  The start is well above the limit because address space that malloc
    # reserved earlier (thread arenas) is usable without growing the process;
    # 64 fails here within ~14 attempts (512 took ~40 and minutes of CPU).
    limit = generous.weights_bytes + 4 * MIB
    data = _cli_json("--memory-limit", str(limit), "--start-batch-size", "64")
    attempts, shrinks = data["attempts"], data["shrinks"]
    assert data["available_bytes"] == 4 * MIB
    assert attempts[0] == {**attempts[0], "batch_size": 64, "ok": False}
    # The allocator's failure, or the engine's report after splitting down to one request.
    assert any(text in attempts[0]["error"] for text in ("allocate memory", "out of memory"))
    assert attempts[-1]["ok"] and not any(a["ok"] for a in attempts[:-1])
    assert [s["from_batch"] for s in shrinks] == [a["batch_size"] for a in attempts[:-1]]
    assert [s["to_batch"] for s in shrinks] == [a["batch_size"] for a in attempts[1:]]
    assert all(s["to_batch"] == int(s["from_batch"] * 0.9) for s in shrinks)
    assert 1 <= data["confirmed_batch"] < 64
    # The memory model agrees: 4 MiB holds only a few of these sequences.
    assert data["predicted_max_batch"] < 16


def test_fit_is_a_least_squares_line_with_a_kv_floor() -> None:
    points = [BatchMeasurement(batch_size=b, peak_bytes=1000 + 300 * b, seconds=0.1)
              for b in (1, 2, 4)]  # fmt: skip
    fit = _fit(points, budget=10_000, safety_margin=0.1, min_slope=1, lengths=LENGTHS)
    assert fit.slope == pytest.approx(300) and fit.intercept == pytest.approx(1000)
    assert not fit.clamped
    assert fit.max_batch == (9000 - 1000) // 300
    noisy = [BatchMeasurement(batch_size=b, peak_bytes=5000 - b, seconds=0.1) for b in (1, 2, 4)]
    floored = _fit(noisy, budget=10_000, safety_margin=0.0, min_slope=500, lengths=LENGTHS)
    assert floored.clamped and floored.slope == 500
    with pytest.raises(ProbeError, match="not even one sequence"):
        _fit(points, budget=1200, safety_margin=0.1, min_slope=1, lengths=LENGTHS)


def test_unknown_model_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--model", "synthetic:nope", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "synthetic:nope" in captured.err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--safety-margin", "1.5"), "safety_margin must be in [0, 1)"),
        (("--backend", "vllm"), "probe backend must be one of transformers"),
        (("--batch-sizes", "4"), "batch_sizes needs two distinct sizes"),
        (("--memory-limit", "1K"), "not above the weights"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(
    flags: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["probe", "--model", "synthetic:tiny", "--dataset", "synthetic", *flags]
    assert main(args) == 2
    # transformers' own load progress bar may precede it; the error is one line.
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0]


def test_run_probe_validates_before_loading() -> None:
    with pytest.raises(ConfigError, match="start_batch_size must be >= 1"):
        run_probe("synthetic:nope", start_batch_size=0)


def _cli_json(*flags: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    # As a user runs it: the test suite's TOKENIZERS_PARALLELISM=false changes
    # how much address space the process has reserved before the rlimit is set,
    # and an address-space limit on CPU is only as exact as that baseline.
    env.pop("TOKENIZERS_PARALLELISM", None)
    command = [sys.executable, "-m", "commands", "probe", "--model", "synthetic:tiny",
               "--dataset", "synthetic", "--num-problems", "8", "--json", *flags]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # Progress goes to stderr, one line before each generation; stdout stays pure JSON.
    for line in ("warm-up at batch 1", "measuring peak memory at batch 4", "confirming batch"):
        assert f"probe: {line}" in done.stderr
    return json.loads(done.stdout)


def _tiny_tensors() -> list:
    from transformers import AutoModelForCausalLM

    from engines.synthetic import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model("synthetic:tiny"))
    return [*model.parameters(), *model.buffers()]

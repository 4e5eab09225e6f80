"""``infertune speedup``: an end-to-end run on synthetic:small, the tuned row, bad input."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest

from commands.main import main
from common.hardware import Hardware, fingerprint, hardware_id
from tests.conftest import vllm_installed
from tuner.api import tuned_config
from tuner.measurement.benchmark import TrialResult
from tuner.measurement.speedup import BASELINE, TUNED, SpeedupConfig, make_row, select_configs
from tuner.measurement.workload import Workload
from tuner.profiles import Profile, ProfileConfig, ProfileMetrics, save_profile
from tuner.reports.speedup import FILES, SpeedupReport, table_cells, write_report

BATCHED = ("transformers-bs16", "vllm-seqs32")


@pytest.fixture(scope="module")
def here() -> Hardware:
    return fingerprint()


@pytest.fixture(scope="module")
def speedup_run(tmp_path_factory) -> tuple[int, Path]:
    """One real run: baseline, transformers batch 16 and vLLM, on 16 synthetic problems."""
    out = tmp_path_factory.mktemp("speedup") / "out"
    code = main(
        ["speedup", "--model", "synthetic:small", "--dataset", "synthetic", "--count", "16",
         "--max-new-tokens", "16", "--configs", BASELINE, *BATCHED, TUNED,
         "--profiles-dir", str(out.parent / "no-profiles"), "--out", str(out)]
    )  # fmt: skip
    return code, out


@pytest.mark.slow
def test_end_to_end_writes_four_files_with_batched_speedups(speedup_run) -> None:
    code, out = speedup_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no temp files left
    report = json.loads((out / "speedup.json").read_text())
    rows = {row["name"]: row for row in report["rows"]}
    expected = [BASELINE, "transformers-bs16"] + (["vllm-seqs32"] if vllm_installed() else [])
    assert list(rows) == expected
    assert all(row["status"] == "ok" for row in rows.values())
    assert rows[BASELINE]["speedup"] == pytest.approx(1.0)
    for name in expected[1:]:
        assert rows[name]["speedup"] > 1, f"{name} is not faster than batch size 1"
    # float32 on CPU: batching must not change a single greedy token.
    assert rows["transformers-bs16"]["agreement"] == 1.0
    assert all(0 <= row["agreement"] <= 1 and row["accuracy"] == 0.0 for row in rows.values())
    assert all(row["gpu_utilization_pct"] is None for row in rows.values())  # no GPU here
    # load: from the subprocess's start to the engine ready, imports included
    assert all(row["load_s"] > 0 and row["warmup_s"] > 0 for row in rows.values())
    assert any("tuned: skipped" in note for note in report["notes"])
    assert report["workload"]["num_problems"] == 16
    assert report["hardware_id"] == hardware_id(fingerprint())


@pytest.mark.slow
def test_end_to_end_table_csv_and_plot(speedup_run) -> None:
    _, out = speedup_run
    markdown = (out / "speedup.md").read_text()
    assert "| configuration | wall time | load | problems/s |" in markdown
    assert "transformers " in markdown and "hardware: " in markdown
    assert "| baseline |" in markdown and "| 1.00x |" in markdown
    assert "| n/a | n/a |" in markdown  # GPU utilisation and energy without a GPU
    with (out / "speedup.csv").open() as handle:
        lines = list(csv.DictReader(handle))
    assert [line["name"] for line in lines][:2] == [BASELINE, "transformers-bs16"]
    assert json.loads(lines[1]["settings"]) == {"batch_size": 16}
    assert (out / "speedup.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _profile(hw: Hardware, **changes) -> Profile:
    profile = Profile(
        model="synthetic:small",
        hardware=hw,
        hardware_id=hardware_id(hw),
        config=ProfileConfig(backend="transformers", settings={"batch_size": 8}, batch_size=8),
        metrics=ProfileMetrics(
            problems_per_s=2.0,
            output_tokens_per_s=200.0,
            baseline_problems_per_s=1.0,
            speedup=2.0,
            parity_agreement=1.0,
        ),
    )
    return dataclasses.replace(profile, **changes)


def test_tuned_row_comes_from_this_machines_profile(here, tmp_path) -> None:
    save_profile(_profile(here), tmp_path)
    tuned, notes = tuned_config("synthetic:small", here, str(tmp_path))
    assert tuned == ProfileConfig(backend="transformers", settings={"batch_size": 8}, batch_size=8)
    configs, skipped = select_configs(
        [TUNED], on_gpu=False, vllm_available=False, tuned=tuned, tuned_missing=""
    )
    assert [c.name for c in configs] == [BASELINE, TUNED]
    assert configs[1].settings == {"batch_size": 8} and configs[1].batch_size == 8
    assert skipped == ["baseline added: every speedup is relative to it"]


def test_unusable_profile_is_a_note_not_a_failure(here, tmp_path) -> None:
    foreign = _profile(here, hardware_id="h100-80g-x1-000000")
    save_profile(foreign, path=tmp_path / "synthetic-small" / f"{hardware_id(here)}.json")
    tuned, notes = tuned_config("synthetic:small", here, str(tmp_path))
    assert tuned is None and "profile not usable" in notes[0] and "h100-80g-x1-000000" in notes[0]
    tuned, notes = tuned_config("synthetic:small", here, str(tmp_path / "empty"))
    assert tuned is None and "run `infertune tune`" in notes[0]


def test_vllm_rows_are_skipped_with_a_note_when_it_is_absent() -> None:
    configs, notes = select_configs(
        [BASELINE, "vllm-seqs64", "transformers-bs32"], on_gpu=True, vllm_available=False
    )
    assert [c.name for c in configs] == [BASELINE, "transformers-bs32"]
    assert notes == ["vllm-seqs64: skipped, vLLM is not installed"]
    gpu = select_configs(["vllm-seqs64"], on_gpu=True, vllm_available=True)[0][1]
    cpu = select_configs(["vllm-seqs64"], on_gpu=False, vllm_available=True)[0][1]
    assert gpu.settings == {"max_num_seqs": 64}
    assert cpu.settings == {"max_num_seqs": 64, "enforce_eager": True}


def _workload(answers: tuple[str, ...]) -> Workload:
    return Workload(
        model="synthetic:tiny",
        dataset="synthetic",
        seed=0,
        max_new_tokens=8,
        problem_ids=tuple(f"p{i}" for i in range(len(answers))),
        prompts=tuple(f"question {i}" for i in range(len(answers))),
        answers=answers,
        num_canary=len(answers),
    )


def _trial(answers, tokens, **values) -> TrialResult:
    fields = {"status": "ok", "problems_per_s": 2.0, "num_problems": len(answers)} | values
    return TrialResult(canary_answers=answers, canary_token_ids=tokens, **fields)


def test_rows_grade_accuracy_and_agreement_against_the_baseline() -> None:
    workload = _workload(("3", "4", "5", "6"))
    baseline = _trial(("3", None, "7", None), ((1,), (2,), (3,), (4,)), problems_per_s=1.0)
    batched = _trial(("3", "4", None, None), ((1,), (9,), (3,), (4,)), gpu_energy_j=40.0)
    config = SpeedupConfig(name="b", backend="transformers", settings={"batch_size": 4})
    row = make_row(config, batched, workload, baseline)
    assert row.accuracy == 0.5  # "3" and "4" are right
    assert row.agreement == 0.75  # same answer "3", same tokens on the last two
    assert row.speedup == 2.0 and row.energy_per_problem_j == 10.0
    failed = make_row(config, TrialResult(status="oom", message="no"), workload, baseline)
    assert failed.speedup is None and failed.accuracy is None
    report = _report((row, failed))
    assert table_cells(report)[1][:3] == ["b", "oom", "n/a"]


def _report(rows) -> SpeedupReport:
    hw = fingerprint()
    return SpeedupReport(
        model="synthetic:tiny",
        dataset="synthetic",
        workload={"num_problems": 4},
        hardware=hw,
        hardware_id=hardware_id(hw),
        rows=tuple(rows),
    )


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path) -> None:
    workload = _workload(("1",))
    ok = _trial(("1",), ((1,),))
    config = SpeedupConfig(name=BASELINE, backend="transformers")
    report = _report([make_row(config, ok, workload, ok)])
    (tmp_path / "speedup.md").write_text("previous table\n")
    (tmp_path / "speedup.png").mkdir()  # os.replace onto a folder fails
    with pytest.raises(OSError):
        write_report(report, tmp_path)
    assert "| baseline |" in (tmp_path / "speedup.md").read_text()  # written before the png
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--configs", "baseline", "vllm-seqs128"], "unknown configuration(s) vllm-seqs128"),
        (["--count", "0"], "--count must be >= 1"),
        (["--time-limit", "0"], "--time-limit must be > 0"),
        (["--model", "synthetic:nope"], "unknown synthetic model"),
        (["--count", "100000"], "fewer than the workload size"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys) -> None:
    base = ["speedup", "--model", "synthetic:tiny", "--dataset", "synthetic", "--count", "4"]
    assert main([*base, "--out", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_is_refused_and_kept(tmp_path, capsys) -> None:
    target = tmp_path / "speedup.md"
    target.write_text("keep me\n")
    argv = ["speedup", "--model", "synthetic:tiny", "--dataset", "synthetic", "--out", str(target)]
    assert main(argv) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me\n"

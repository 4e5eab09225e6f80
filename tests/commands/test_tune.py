"""Bad input to `infertune tune`: one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from commands.main import main


def _tune(tmp_path: Path, *extra: str) -> list[str]:
    return ["tune", "--model", "synthetic:tiny", "--dataset", "synthetic", "--workload-size", "4",
            "--max-new-tokens", "4", "--n-trials", "1", "--profiles-dir",
            str(tmp_path / "profiles"), *extra]  # fmt: skip


def _one_line_error(capsys, *words: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err


def test_unknown_model(tmp_path, capsys):
    argv = _tune(tmp_path)
    argv[argv.index("synthetic:tiny")] = "synthetic:nope"
    assert main(argv) == 2
    _one_line_error(capsys, "synthetic:nope")
    assert not (tmp_path / "profiles").exists()  # no study file, no profile folder


def test_dataset_smaller_than_the_workload(tmp_path, capsys):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    argv = _tune(tmp_path, "--data_dir", str(tmp_path))
    argv[argv.index("synthetic", argv.index("--dataset"))] = "gsm8k"
    assert main(argv) == 2
    _one_line_error(capsys, "has 1 problems", "--count")


@pytest.mark.parametrize(
    "url", ["postgresql://nobody@127.0.0.1:1/none", "sqlite:////no/such/folder/x.db", "bogus://x"]
)
def test_unreachable_storage(tmp_path, capsys, url):
    assert main(_tune(tmp_path, "--storage", url)) == 2
    _one_line_error(capsys, "cannot open study storage", "--storage")


def test_corrupted_profile_is_refused_and_kept(tmp_path, capsys):
    from common.hardware import fingerprint, hardware_id

    target = tmp_path / "profiles" / "synthetic-tiny" / f"{hardware_id(fingerprint())}.json"
    target.parent.mkdir(parents=True)
    target.write_text("{not json")
    assert main(_tune(tmp_path)) == 2
    _one_line_error(capsys, "corrupted")
    assert target.read_text() == "{not json"


def test_unknown_backend_and_bad_numbers(tmp_path, capsys):
    assert main(_tune(tmp_path, "--backends", "tensorrt")) == 2
    _one_line_error(capsys, "tensorrt")
    assert main(_tune(tmp_path, "--parity-threshold", "1.5")) == 2
    _one_line_error(capsys, "parity_threshold")


def test_the_progress_line_counts_down_on_a_terminal_and_prints_per_trial_otherwise():
    import io
    import time

    from rich.console import Console

    from commands.tune import _ProgressLine
    from tuner.search.budget import TuneProgress

    running = TuneProgress(num_done=0, n_trials=5, remaining_s=100, running=0)
    done = TuneProgress(num_done=1, n_trials=5, remaining_s=90, best_number=0,
                        best_problems_per_s=2.5)  # fmt: skip
    terminal = io.StringIO()
    with _ProgressLine(Console(file=terminal, force_terminal=True, width=120)) as line:
        line(running)
        line.log("trial 0: [bold] is not markup")
        time.sleep(1.6)  # the status refreshes twice a second: the time left moves
    shown = terminal.getvalue()
    assert "measuring trial 0" in shown and "1m40s left" in shown and "1m39s left" in shown
    assert "[bold] is not markup" in shown
    plain = io.StringIO()
    with _ProgressLine(Console(file=plain, force_terminal=False)) as line:
        line(running)  # a trial starting: nothing printed without a terminal
        line(done)
    assert plain.getvalue() == "tune: 1/5 trials; best trial 0: 2.5 problems/s; 1m30s left\n"

"""The sweep summary compares each job with a baseline sweep by tune's parity rule.

Two results roots with real manifests and answers files, as the eval CLI
writes them: the answers files are the lowest layer the summary reads, so
they are written directly (a random-weight model cannot be made to answer).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.main import main
from engines.errors import ConfigError
from tuner.sweep.manifest import Job, Manifest
from tuner.sweep.summary import build_rows, markdown

JOB = Job(id="m__gsm8k-16__standard", kind="eval", model="m", dataset="gsm8k", count=16,
          mode="standard")  # fmt: skip
GOLDS = [str(n) for n in range(10, 26)]


def sweep_root(root: Path, predicted: list[str | None]) -> list[dict]:
    """A finished one-job sweep at ``root`` whose run answered ``predicted``."""
    run = root / JOB.id / "run"
    pairs = enumerate(zip(GOLDS, predicted, strict=True))
    problems = [{"id": f"p{i}", "gold": g, "predicted": p, "correct": p == g,
                 "response": f"... {p}"} for i, (g, p) in pairs]  # fmt: skip
    right = sum(p["correct"] for p in problems)
    summary = {"accuracy": right / 16, "num_correct": right, "num_done": 16, "num_problems": 16}
    (run / "answers").mkdir(parents=True)
    answers = {"summary": summary, "problems": problems}
    (run / "answers" / "m_gsm8k_standard_answers.json").write_text(json.dumps(answers))
    manifest = Manifest(root)
    manifest.sync([JOB])
    manifest.update(JOB.id, state="done", folder=f"{JOB.id}/run")
    return list(manifest.jobs().values())


def test_each_job_reports_agreement_flips_delta_and_p(tmp_path: Path) -> None:
    # The baseline is right on 12 of 16; the tuned run breaks 6 of those.
    sweep_root(tmp_path / "batch1", GOLDS[:12] + ["0"] * 4)
    entries = sweep_root(tmp_path / "tuned", ["1"] * 6 + GOLDS[6:12] + ["0"] * 4)
    [row] = build_rows(tmp_path / "tuned", entries, baseline=tmp_path / "batch1")
    assert row.agreement == 10 / 16 and (row.right_to_wrong, row.wrong_to_right) == (6, 0)
    assert row.accuracy_delta == -6 / 16 and row.p_value == 2 / 2**6
    assert row.is_answering and row.is_acceptable is False
    line = markdown([row]).splitlines()[2]
    assert "| 62% | 6/0 | -37.5 pt | 0.031 | NO |" in line
    [alone] = build_rows(tmp_path / "tuned", entries)  # no baseline: nothing to compare
    assert alone.agreement is None and markdown([alone]).splitlines()[2].endswith("| - | - |")


def test_same_answers_are_acceptable(tmp_path: Path) -> None:
    sweep_root(tmp_path / "batch1", GOLDS[:12] + ["0"] * 4)
    entries = sweep_root(tmp_path / "tuned", GOLDS[:12] + ["0"] * 4)
    [row] = build_rows(tmp_path / "tuned", entries, baseline=tmp_path / "batch1")
    assert row.agreement == 1.0 and row.is_acceptable and row.p_value == 1.0


def test_a_baseline_that_is_not_a_sweep_is_one_line_before_any_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError, match="no readable sweep-manifest.json"):
        build_rows(tmp_path, [], baseline=tmp_path / "nowhere")
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text("models: [synthetic:tiny]\ndatasets: [{name: synthetic, count: 2}]\n"
                          "modes: [standard]\n")  # fmt: skip
    code = main(["sweep", str(sweep_file), "--results", str(tmp_path / "out"),
                 "--baseline", str(tmp_path / "nowhere")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--baseline" in err[0]
    assert not (tmp_path / "out").exists()  # refused before the first job

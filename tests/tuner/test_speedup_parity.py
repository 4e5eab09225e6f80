"""The speedup table applies tune's answer-parity rule: flips, delta, McNemar p, marked rows.

Trial results are built directly (the lowest layer the table reads: each
configuration's extracted answers and tokens); rows, the best row and the
rendered table are the real ones.
"""

from __future__ import annotations

from common.hardware import fingerprint, hardware_id
from tuner.measurement.benchmark import TrialResult
from tuner.measurement.speedup import BASELINE, TUNED, SpeedupConfig, best_row, make_row
from tuner.measurement.workload import Workload
from tuner.reports.speedup import COLUMNS, SpeedupReport, rich_table, table_cells, to_markdown

GOLDS = tuple(str(n) for n in range(10, 26))  # 16 problems
TOKENS = tuple((i,) for i in range(16))


def workload() -> Workload:
    return Workload(
        model="synthetic:tiny",
        dataset="synthetic",
        seed=0,
        max_new_tokens=8,
        problem_ids=tuple(f"p{i}" for i in range(16)),
        prompts=tuple(f"question {i}" for i in range(16)),
        answers=GOLDS,
        num_canary=16,
    )


def trial(answers: tuple[str | None, ...], problems_per_s: float) -> TrialResult:
    return TrialResult(status="ok", problems_per_s=problems_per_s, num_problems=16,
                       canary_answers=answers, canary_token_ids=TOKENS)  # fmt: skip


def rows():
    # The baseline is right on 12 of 16.  "fast" breaks 6 of those (agreement
    # 10/16 = 62%); "tuned" breaks the same 6 but the threshold is lowered to
    # 0.5 for it below; "ok" breaks one and fixes one (agreement 14/16 = 88%).
    base = GOLDS[:12] + ("0",) * 4
    broken = ("1",) * 6 + GOLDS[6:12] + ("0",) * 4
    mixed = ("1",) + GOLDS[1:12] + (GOLDS[12], "0", "0", "0")
    configs = {
        BASELINE: (base, 1.0),
        "fast": (broken, 9.0),
        TUNED: (broken, 8.0),
        "ok": (mixed, 4.0),
    }
    baseline = trial(base, 1.0)
    made = []
    for name, (answers, speed) in configs.items():
        config = SpeedupConfig(name=name, backend="transformers", settings={"batch_size": 4})
        threshold = 0.5 if name == TUNED else 0.8
        made.append(make_row(config, trial(answers, speed), workload(), baseline,
                             parity_threshold=threshold))  # fmt: skip
    return made


def test_rows_carry_the_flips_and_the_paired_test() -> None:
    base, fast, tuned, ok = rows()
    assert base.is_acceptable and (base.right_to_wrong, base.p_value) == (0, 1.0)
    assert (fast.right_to_wrong, fast.wrong_to_right) == (6, 0)
    assert fast.accuracy_delta == -6 / 16 and fast.p_value == 2 / 2**6
    assert fast.agreement == 10 / 16 and not fast.is_acceptable
    # above its (lowered) agreement threshold, yet significantly less accurate
    assert tuned.agreement >= 0.5 and not tuned.is_acceptable
    assert (ok.right_to_wrong, ok.wrong_to_right, ok.p_value) == (1, 1, 1.0)
    assert ok.is_acceptable and ok.accuracy_delta == 0.0


def test_the_best_row_is_the_fastest_acceptable_one_and_failures_are_marked() -> None:
    made = rows()
    assert best_row(made).name == "ok"  # not "fast" nor "tuned", both faster
    hw = fingerprint()
    report = SpeedupReport(model="synthetic:tiny", dataset="synthetic",
                           workload={"num_problems": 16}, hardware=hw,
                           hardware_id=hardware_id(hw), rows=tuple(made))  # fmt: skip
    cells = {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in table_cells(report)}
    assert cells["fast"]["same answers"] == "NO" and cells["ok"]["same answers"] == "yes"
    assert cells["fast"]["flips"] == "6/0" and cells["fast"]["p"] == "0.031"
    assert cells["fast"]["Δ accuracy"] == "-37.5 pt"
    text = to_markdown(report)
    assert "fastest with the same answers: ok (4.00x)" in text
    assert "- tuned: its answers differ from the baseline's; re-tune" in text
    assert "- fast: its answers differ from the baseline's\n" in text
    assert rich_table(report).row_count == 4


def test_a_random_weight_model_has_no_flips_to_show() -> None:
    silent = trial((None,) * 16, 1.0)
    config = SpeedupConfig(name=BASELINE, backend="transformers", settings={"batch_size": 1})
    row = make_row(config, silent, workload(), silent)
    assert row.is_answering is False and row.agreement == 1.0 and row.is_acceptable
    assert row.right_to_wrong is None and row.p_value is None

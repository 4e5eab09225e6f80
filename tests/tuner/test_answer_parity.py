"""The one answer-parity rule: agreement, flips and McNemar's exact test."""

from __future__ import annotations

import pytest

from tuner.answer_parity import (
    DEFAULT_THRESHOLD,
    compare,
    is_answering,
    mcnemar_exact,
)

GOLDS = ("3", "5", "8", "13", "21", "34", "55", "89")


def _tokens(n: int) -> list[tuple[int, ...]]:
    return [(i, i + 1) for i in range(n)]


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (6, 0), (5, 2), (10, 3), (4, 4), (0, 9)])
def test_mcnemar_matches_a_binomial_test(b: int, c: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    expected = 1.0 if b + c == 0 else stats.binomtest(min(b, c), b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected)


def test_mcnemar_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="flip counts"):
        mcnemar_exact(-1, 2)


def test_a_workload_answers_when_most_reference_rows_have_an_answer() -> None:
    assert is_answering(["1", "2", None])
    assert not is_answering(["1", None, None, None])
    assert not is_answering([])


def test_identical_answers_with_different_tokens_agree_fully() -> None:
    answers = list(GOLDS[:6]) + ["0", None]
    report = compare(answers, _tokens(8), answers, [(9,)] * 8, GOLDS)
    assert report.is_answering
    assert report.agreement == 1.0
    assert (report.right_to_wrong, report.wrong_to_right, report.accuracy_delta) == (0, 0, 0.0)
    assert report.p_value == 1.0
    assert report.is_acceptable()


def test_flips_are_counted_both_ways_and_equivalent_answers_agree() -> None:
    reference = ["3", "5", "8", "13", "0", "0", "55", "89"]
    # row 0 right->wrong, row 4 wrong->right, row 6 the same number written differently
    candidate = ["4", "5", "8", "13", "21", "0", "55.0", "89"]
    report = compare(candidate, _tokens(8), reference, _tokens(8), GOLDS)
    assert (report.right_to_wrong, report.wrong_to_right) == (1, 1)
    assert report.accuracy_delta == 0.0
    assert report.agreement == pytest.approx(6 / 8)
    assert not report.is_significantly_worse()
    assert not report.is_acceptable(threshold=DEFAULT_THRESHOLD)
    assert report.is_acceptable(threshold=0.75)


def test_a_significantly_less_accurate_configuration_is_rejected_whatever_the_threshold() -> None:
    golds = [str(i) for i in range(40)]
    reference = list(golds)
    candidate = ["x"] * 8 + golds[8:]  # 8 right-to-wrong flips, none the other way
    report = compare(candidate, _tokens(40), reference, _tokens(40), golds)
    assert report.right_to_wrong == 8
    assert report.p_value < 0.01
    assert report.accuracy_delta == pytest.approx(-0.2)
    assert report.agreement == pytest.approx(0.8)
    assert report.is_significantly_worse()
    assert not report.is_acceptable(threshold=0.5)
    assert report.shortfall(threshold=0.5) > 0


def test_a_model_that_answers_nothing_keeps_token_parity() -> None:
    reference = [None] * 6 + ["7", None]
    tokens = _tokens(8)
    candidate_tokens = tokens[:7] + [(99,)]  # the last row's tokens differ
    report = compare([None] * 8, candidate_tokens, reference, tokens, GOLDS)
    assert not report.is_answering
    assert report.agreement == pytest.approx(7 / 8)
    assert report.p_value == 1.0


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same problems"):
        compare(["1"], _tokens(1), ["1", "2"], _tokens(2), GOLDS[:2])


def test_agreement_is_the_rule_tune_and_speedup_share() -> None:
    from tuner.answer_parity import agreement
    from tuner.measurement.benchmark import TrialResult, parity

    def trial(answers, tokens) -> TrialResult:
        return TrialResult(
            status="ok",
            problems_per_s=1.0,
            canary_answers=tuple(answers),
            canary_token_ids=tuple(tuple(t) for t in tokens),
        )

    answering = ["1", "2", "3", None]
    reworded = [(9,), (8,), (7,), (6,)]  # other tokens, same answers
    assert agreement(answering, reworded, answering, _tokens(4)) == 1.0
    assert parity(trial(answering, reworded), trial(answering, _tokens(4))) == 1.0
    silent = [None, None, None, "4"]
    assert agreement(silent, reworded, silent, _tokens(4)) == 0.25  # tokens decide
    failed = TrialResult(status="oom")
    assert parity(failed, trial(answering, _tokens(4))) == 0.0

"""Does a configuration give the same answers as the reference? One rule for every command.

A real model *answers*: its reference run extracts an answer from most
problems, and what matters is whether a batched configuration changes those
answers, and whether it changes them for the worse.  A random-weight model
answers nothing, so for it the only meaningful check is token-for-token
equality of the completions (the old rule, kept)::

    report = compare(result_answers, result_tokens, ref_answers, ref_tokens, golds)
    report.agreement, report.right_to_wrong, report.p_value
    report.is_acceptable(threshold=DEFAULT_THRESHOLD)

For an answering workload the flips are paired outcomes on the same problems,
so the accuracy change is tested with McNemar's exact test (a two-sided
binomial test on the discordant pairs), the standard paired test lm-eval-style
comparisons use; a configuration is rejected when it is significantly *less*
accurate, or when its answers agree with the reference's on fewer than
``threshold`` of the problems.  The same function serves tune, speedup and the
sweep summary, so the three can never disagree on what "same answers" means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

# A workload "answers" when the reference extracts an answer on more than this
# share of its problems.  Random-weight models extract nothing (or a stray
# number) on most; the real SmolLM2-135M-Instruct extracts one on nearly all.
ANSWERING_SHARE = 0.5
# Significance level of the paired test; with canary sets of 16-64 problems it
# only fires on a clear loss (e.g. 6 right-to-wrong flips against 0).
DEFAULT_ALPHA = 0.05
# Default minimum agreement, shared by tune, speedup and the sweep summary.
# Measured on the real SmolLM2-135M-Instruct (README, "Measured on the real
# model"; 2-core CPU, fp32): the tuned batch-16 configuration gave the batch-1
# answer on 200 of 200 svamp problems and on 6 of 6 gsm8k canaries, vLLM on 6
# of 6; batching in float32 changes no answer.  In bfloat16 batch 16 kept only
# 62.5% of rows token-identical (32 gsm8k prompts), so reduced precision does
# flip some answers: 0.9 admits a flipped canary in ten while McNemar's test
# catches a configuration whose flips make it less accurate.
DEFAULT_THRESHOLD = 0.9


def mcnemar_exact(right_to_wrong: int, wrong_to_right: int) -> float:
    """Two-sided exact McNemar p-value for the discordant pair counts.

    Written out (a binomial tail with p = 1/2) rather than taken from scipy,
    which is not one of the project's dependencies, for three lines of
    arithmetic.
    """
    if right_to_wrong < 0 or wrong_to_right < 0:
        raise ValueError("flip counts must be >= 0")
    n = right_to_wrong + wrong_to_right
    if n == 0:
        return 1.0
    k = min(right_to_wrong, wrong_to_right)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def is_answering(answers: Sequence[str | None]) -> bool:
    """Whether the reference extracted an answer on most problems."""
    return bool(answers) and sum(a is not None for a in answers) > ANSWERING_SHARE * len(answers)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParityReport:
    """How one configuration's answers compare with the reference's on the same problems.

    ``agreement`` is the share of problems with the same extracted answer
    (answering workloads) or the same tokens (otherwise).  The flip counts,
    ``accuracy_delta`` (configuration minus reference, as a fraction) and
    ``p_value`` are graded against the gold answers; they are 0 / 0.0 / 1.0
    for a non-answering workload, where accuracy is 0 for both.
    """

    num_problems: int
    is_answering: bool
    agreement: float
    right_to_wrong: int = 0
    wrong_to_right: int = 0
    accuracy_delta: float = 0.0
    p_value: float = 1.0

    def is_significantly_worse(self, alpha: float = DEFAULT_ALPHA) -> bool:
        return self.right_to_wrong > self.wrong_to_right and self.p_value < alpha

    def is_acceptable(
        self, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA
    ) -> bool:
        """Agreement at or above ``threshold`` and not significantly less accurate."""
        return self.agreement >= threshold and not self.is_significantly_worse(alpha)

    def shortfall(
        self, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA
    ) -> float:
        """An Optuna constraint value: <= 0 when acceptable, the agreement gap otherwise."""
        gap = threshold - self.agreement
        if self.is_significantly_worse(alpha):
            return max(gap, 0.0) + 1.0
        return gap

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """``parity 94%`` (tokens), or with the flips and the paired test for a model that
        answers."""
        text = f"parity {self.agreement:.0%}"
        if self.is_answering:
            text += (
                f" (right->wrong {self.right_to_wrong}, wrong->right {self.wrong_to_right},"
                f" accuracy {self.accuracy_delta:+.1%}, McNemar p={self.p_value:.2g})"
            )
        return text

    def row_fields(
        self, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA
    ) -> dict[str, Any]:
        """What a table row shows (speedup, sweep summary): agreement, the verdict, and
        the flips, delta and p, which are None for a model that does not answer
        (its tokens decide; there are no right answers to flip)."""
        answering = self.is_answering
        return {
            "agreement": self.agreement,
            "is_answering": answering,
            "right_to_wrong": self.right_to_wrong if answering else None,
            "wrong_to_right": self.wrong_to_right if answering else None,
            "accuracy_delta": self.accuracy_delta if answering else None,
            "p_value": self.p_value if answering else None,
            "is_acceptable": self.is_acceptable(threshold, alpha),
        }


def compare(
    answers: Sequence[str | None],
    token_ids: Sequence[Sequence[int] | str],
    reference_answers: Sequence[str | None],
    reference_token_ids: Sequence[Sequence[int] | str],
    golds: Sequence[str],
) -> ParityReport:
    """Compare one configuration's canary outputs with the reference's.

    ``token_ids`` may be the generated texts instead, where the tokens were
    not kept (evaluation runs): equal texts stand for equal tokens.

    Raises:
        ValueError: the sequences do not describe the same problems.
    """
    count = len(reference_answers)
    if not len(answers) == len(token_ids) == len(reference_token_ids) == len(golds) == count:
        raise ValueError("answers, token ids and golds must cover the same problems")
    if count == 0:
        raise ValueError("parity needs at least one problem")
    same = agreement(answers, token_ids, reference_answers, reference_token_ids)
    if not is_answering(reference_answers):
        return ParityReport(num_problems=count, is_answering=False, agreement=same)
    return _answer_report(answers, reference_answers, golds, same)


def compare_runs(
    problems: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]]
) -> ParityReport | None:
    """:func:`compare` for two evaluation runs, on the problems both finished.

    Each item is a run's problem record (``id``, ``predicted``, ``response``,
    ``gold``, as in its answers file); ``None`` when the runs share no problem.
    """
    ours = {p["id"]: p for p in problems}
    shared = [r for r in reference if r["id"] in ours]
    if not shared:
        return None
    mine = [ours[r["id"]] for r in shared]
    return compare(
        [p.get("predicted") for p in mine],
        [p.get("response") or "" for p in mine],
        [r.get("predicted") for r in shared],
        [r.get("response") or "" for r in shared],
        [str(r["gold"]) for r in shared],
    )


def agreement(
    answers: Sequence[str | None],
    token_ids: Sequence[Sequence[int] | str],
    reference_answers: Sequence[str | None],
    reference_token_ids: Sequence[Sequence[int] | str],
) -> float:
    """Share of problems that agree: same answers (answering workload) or same tokens.

    Without an answering reference a row also agrees when both extracted the
    same answer, as the token rule always allowed.
    """
    rows = list(zip(answers, token_ids, reference_answers, reference_token_ids, strict=True))
    if not rows:
        return 0.0
    if is_answering(reference_answers):
        return sum(_same_answer(a, ra) for a, _, ra, _ in rows) / len(rows)
    same = sum((a is not None and a == ra) or tuple(t) == tuple(rt) for a, t, ra, rt in rows)
    return same / len(rows)


def _answer_report(
    answers: Sequence[str | None],
    reference_answers: Sequence[str | None],
    golds: Sequence[str],
    same: float,
) -> ParityReport:
    from evaluation.grading import answers_match

    count = len(golds)
    right = [answers_match(a, g) for a, g in zip(answers, golds, strict=True)]
    ref_right = [answers_match(a, g) for a, g in zip(reference_answers, golds, strict=True)]
    right_to_wrong = sum(r and not c for r, c in zip(ref_right, right, strict=True))
    wrong_to_right = sum(c and not r for r, c in zip(ref_right, right, strict=True))
    return ParityReport(
        num_problems=count,
        is_answering=True,
        agreement=same,
        right_to_wrong=right_to_wrong,
        wrong_to_right=wrong_to_right,
        accuracy_delta=(wrong_to_right - right_to_wrong) / count,
        p_value=mcnemar_exact(right_to_wrong, wrong_to_right),
    )


def _same_answer(answer: str | None, reference: str | None) -> bool:
    # Two rows that both extract nothing give the same (wrong) outcome.
    if answer is None or reference is None:
        return answer is reference
    from evaluation.grading import answers_match

    return answer == reference or answers_match(answer, reference)

"""Robust readers of what a model says: a checker's verdict, a planner's sub-problems.

Models (and random-weight synthetic models above all) may say anything.  A
reader never raises: a verdict it cannot read counts as INCORRECT with the
reason recorded, and a plan it cannot read becomes a one-step plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_FEEDBACK_CHARS = 2000
_VERDICT = re.compile(r"verdict\W{0,5}(incorrect|correct|wrong|right)\b", re.IGNORECASE)
_NEGATIVE = re.compile(r"\b(incorrect|wrong|not correct|mistake|reject)", re.IGNORECASE)
_POSITIVE = re.compile(r"\b(correct|accept(?:ed)?)\b", re.IGNORECASE)
_FEEDBACK = re.compile(r"feedback\s*:\s*(.*)", re.IGNORECASE | re.DOTALL)
_ITEM = re.compile(r"^\s*(?:(?:step|sub-?problem)\s*)?(?:\d+[.):]|[-*•])\s+(.+?)\s*$",
                   re.IGNORECASE | re.MULTILINE)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """A checker's (or reflector's) judgement; ``reason`` says how it was read."""

    is_correct: bool
    feedback: str
    reason: str

    def as_record(self) -> dict[str, object]:
        return {"verdict": "CORRECT" if self.is_correct else "INCORRECT",
                "feedback": self.feedback, "verdict_reason": self.reason}  # fmt: skip


def parse_verdict(text: str) -> Verdict:
    """Read ``VERDICT: CORRECT`` / ``VERDICT: INCORRECT`` (the last one wins).

    Without a verdict line, a negative word (incorrect, wrong, mistake, ...)
    means INCORRECT and a bare "correct"/"accept" means CORRECT; anything else
    is INCORRECT with ``reason`` saying the verdict was unparseable.
    """
    feedback_match = _FEEDBACK.search(text)
    feedback = (feedback_match[1] if feedback_match else text).strip()[:MAX_FEEDBACK_CHARS]
    explicit = _VERDICT.findall(text)
    if explicit:
        word = explicit[-1].lower()
        return Verdict(is_correct=word in ("correct", "right"), feedback=feedback,
                       reason="verdict line")  # fmt: skip
    if _NEGATIVE.search(text):
        return Verdict(is_correct=False, feedback=feedback, reason="no verdict line; negative word")
    if _POSITIVE.search(text):
        return Verdict(is_correct=True, feedback=feedback, reason="no verdict line; positive word")
    return Verdict(
        is_correct=False,
        feedback=feedback,
        reason="unparseable verdict (no CORRECT/INCORRECT): counted as INCORRECT",
    )


def parse_plan(text: str, question: str, max_items: int) -> tuple[list[str], str]:
    """Sub-problems from a numbered or bulleted list, and how the plan was read.

    No list (or an empty one) gives the one-step plan ``[question]``.
    """
    items = [m.strip() for m in _ITEM.findall(text) if m.strip()]
    if not items:
        return [question], "unparseable plan (no numbered or bulleted items): solve as one step"
    if len(items) > max_items:
        return items[:max_items], f"plan had {len(items)} items: kept the first {max_items}"
    return items, "numbered or bulleted items"

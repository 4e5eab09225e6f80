"""The round-based agent framework: per-problem state machines stepped together.

An agent never talks to the engine itself.  It says, for one problem's
:class:`AgentState`, which model calls the problem needs next (:meth:`Agent.calls`)
and what to do with the answers (:meth:`Agent.advance`).  The driver
(:mod:`evaluation.agents.mode`) gathers the calls of *every* still-active problem,
sends them to the engine in one ``generate`` call per role, and hands the
completions back.  N problems with R rounds therefore cost about R engine calls,
not N x R as when agents ran one problem at a time.

A state holds only JSON values, so the driver can persist it after every step
and a resumed run continues where the problem stood.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from engines import Completion, GenerationRequest
from evaluation.agents.verdicts import Verdict
from evaluation.datasets import Problem
from evaluation.grading import answers_match, extract_answer
from evaluation.prompts import PromptSettings

DONE = "done"
# case types: how the final answer relates to the first one
CASES = ("first_try_success", "improved", "degraded", "failed")


@dataclass(frozen=True, slots=True)
class Call:
    """One model call a problem needs in the current step; ``role`` picks the engine."""

    role: str
    request: GenerationRequest


@dataclass(slots=True, kw_only=True)
class AgentState:
    """Where one problem stands (mutable; JSON values only, see :meth:`as_record`)."""

    problem: Problem
    phase: str
    step: int = 0
    iteration: int = 1
    trace: list[dict] = field(default_factory=list)
    data: dict = field(default_factory=dict)  # agent-specific working values
    first_answer: str | None = None
    first_response: str | None = None
    final_answer: str | None = None
    final_response: str = ""
    finish_reason: str = "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def is_done(self) -> bool:
        return self.phase == DONE

    def as_record(self) -> dict[str, object]:
        names = [name for name in self.__slots__ if name != "problem"]
        return {name: getattr(self, name) for name in names}

    @classmethod
    def from_record(cls, problem: Problem, record: dict) -> AgentState:
        return cls(problem=problem, **record)

    def log_call(self, role: str, request: GenerationRequest,
                 outputs: Sequence[Completion]) -> dict:  # fmt: skip
        """Add one model call to the trace; returns the entry so agents can annotate it."""
        self.prompt_tokens += outputs[0].prompt_tokens if outputs else 0
        self.completion_tokens += sum(c.completion_tokens for c in outputs)
        entry = {
            "step": self.step,
            "iteration": self.iteration,
            "role": role,
            "prompt": request.prompt if request.prompt is not None else list(request.messages),
            "responses": [c.text for c in outputs],
            "finish_reasons": [c.finish_reason for c in outputs],
            "completion_tokens": [c.completion_tokens for c in outputs],
        }
        self.trace.append(entry)
        return entry

    def propose(self, response: str, finish_reason: str, answer: str | None = None) -> str | None:
        """Take ``response`` as the current solution; the first one is the first answer."""
        answer = extract_answer(response) if answer is None else answer
        if self.first_response is None:
            self.first_response, self.first_answer = response, answer
        self.final_response, self.final_answer = response, answer
        self.finish_reason = finish_reason
        return answer

    def finish(self) -> None:
        self.phase = DONE

    def apply_verdict(self, verdict: Verdict, max_iterations: int) -> bool:
        """Record a checker's verdict; finish on CORRECT or at the iteration limit.

        Returns True when the problem goes on to another iteration (the verdict's
        feedback is then in ``data["feedback"]``).
        """
        self.trace[-1] |= verdict.as_record()
        if verdict.is_correct or self.iteration >= max_iterations:
            self.data["stopped"] = "accepted" if verdict.is_correct else "max_iterations"
            self.finish()
            return False
        self.data["feedback"] = verdict.feedback
        self.iteration += 1
        return True


def case_type(first_correct: bool, final_correct: bool) -> str:
    """first-try success, improved, degraded or failed."""
    if first_correct:
        return "first_try_success" if final_correct else "degraded"
    return "improved" if final_correct else "failed"


def outcome_fields(state: AgentState) -> dict[str, object]:
    """The agent fields of a finished problem's record (beyond the standard ones)."""
    gold = state.problem.answer
    first_correct = answers_match(state.first_answer, gold)
    final_correct = answers_match(state.final_answer, gold)
    return {
        "first_answer": state.first_answer,
        "first_correct": first_correct,
        "final_answer": state.final_answer,
        "case": case_type(first_correct, final_correct),
        "num_steps": state.step,
        "num_iterations": state.iteration,
        "trace": state.trace,
    }


class Agent(abc.ABC):
    """A per-problem state machine; the driver steps every problem's machine together.

    Subclasses are frozen dataclasses holding the agent's settings.  Contract:
    while a state is not done, :meth:`calls` returns at least one call; after the
    driver ran them, :meth:`advance` receives the completions (in the same order)
    and moves the state to its next phase or to ``DONE``.  A problem takes at most
    :meth:`max_steps` steps, so a run makes at most ``max_steps() x roles`` engine
    calls, whatever the number of problems.
    """

    name: ClassVar[str]
    roles: ClassVar[tuple[str, ...]] = ("solver",)

    prompt: PromptSettings

    @abc.abstractmethod
    def settings(self) -> dict[str, object]:
        """The agent's settings (stored with the run; a resume must match them)."""

    @abc.abstractmethod
    def max_steps(self) -> int:
        """The most steps one problem can take."""

    @abc.abstractmethod
    def start(self, problem: Problem) -> AgentState:
        """A fresh state for ``problem``."""

    @abc.abstractmethod
    def calls(self, state: AgentState) -> list[Call]:
        """The model calls ``state`` needs in this step."""

    @abc.abstractmethod
    def advance(self, state: AgentState, outputs: list[tuple[Completion, ...]]) -> None:
        """Consume the completions of :meth:`calls` (same order) and move ``state`` on."""

    def act(self, states: list[AgentState]) -> None:  # noqa: B027 - optional hook
        """Non-model work after a step, for all stepped problems at once (e.g. tools)."""

    def extra_fields(self, state: AgentState) -> dict[str, object]:
        """Agent-specific fields of a finished problem's record."""
        return {}

    def extra_metrics(self, records: list[dict]) -> dict[str, object]:
        """Agent-specific ``metrics.csv`` columns."""
        return {}

    def ask(self, text: str, **decoding: object) -> GenerationRequest:
        """``text`` as a plain prompt, or as a user message when the run uses chat templates."""
        if not self.prompt.apply_chat_template:
            return self.request(prompt=text, **decoding)
        system = self.prompt.system_prompt
        messages = [{"role": "system", "content": system}] if system else []
        return self.request(messages=[*messages, {"role": "user", "content": text}], **decoding)

    def request(self, *, prompt: str | None = None, messages: Sequence[dict] | None = None,
                **decoding: object) -> GenerationRequest:  # fmt: skip
        """A request with the run's budget and stops; ``decoding`` overrides the prompt's."""
        chosen = replace(self.prompt.decoding, **decoding) if decoding else self.prompt.decoding
        return GenerationRequest(
            prompt=prompt,
            messages=tuple(messages) if messages is not None else None,
            decoding=chosen,
            stop=self.prompt.stop,
            max_new_tokens=self.prompt.max_new_tokens,
        )

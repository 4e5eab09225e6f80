"""Self-consistency: k sampled solutions per problem, the most common answer wins.

The k samples are one request with ``Decoding(n=k)``, so vLLM prefills the
prompt once and shares its KV cache between the samples, and the transformers
backend decodes them as extra rows of the same batch.  Answers are clustered by
mathematical equivalence with the grader's :func:`answers_match` (``0.5``,
``1/2`` and ``\\frac{1}{2}`` are one answer), never by string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from engines import Completion
from engines.errors import ConfigError
from evaluation.agents.base import Agent, AgentState, Call
from evaluation.datasets import Problem
from evaluation.grading import answers_match, extract_answer
from evaluation.prompts import PromptSettings, prompt_text

TIE_BREAK = "earliest first sample among the largest clusters"


@dataclass(frozen=True, slots=True, kw_only=True)
class Vote:
    """The outcome of one vote."""

    winner: str | None
    clusters: tuple[tuple[int, ...], ...]  # sample indices per answer, by first appearance
    tied: bool


def vote(answers: Sequence[str | None]) -> Vote:
    """Cluster ``answers`` by equivalence; the largest cluster wins.

    Ties go to the cluster whose first sample came earliest, so the result
    depends only on the samples.  ``None`` (no answer) never wins while any
    sample has an answer.
    """
    clusters: list[list[int]] = []
    for index, answer in enumerate(answers):
        if answer is None:
            continue
        home = next((c for c in clusters if _same(answers[c[0]], answer)), None)
        if home is None:
            clusters.append([index])
        else:
            home.append(index)
    if not clusters:
        return Vote(winner=None, clusters=(), tied=False)
    largest = max(len(c) for c in clusters)
    leaders = [c for c in clusters if len(c) == largest]  # already in first-appearance order
    return Vote(
        winner=answers[leaders[0][0]],
        clusters=tuple(tuple(c) for c in clusters),
        tied=len(leaders) > 1,
    )


def _same(a: str | None, b: str) -> bool:
    # answers_match reads its second argument as the reference; equivalence is
    # symmetric in intent, so accept either direction.
    return answers_match(a, b) or answers_match(b, a)


@dataclass(frozen=True, slots=True, kw_only=True)
class MajorityVote(Agent):
    """``num_runs`` samples at ``temperature``/``top_p``/``seed``; report maj@k and pass@k."""

    name = "majority_vote"
    prompt: PromptSettings = field(default_factory=PromptSettings)
    num_runs: int = 5

    def __post_init__(self) -> None:
        if self.num_runs < 1:
            raise ConfigError(f"num_runs must be >= 1, got {self.num_runs}")
        if self.num_runs > 1 and self.prompt.decoding.is_greedy:
            raise ConfigError("majority_vote with num_runs > 1 needs --temperature > 0")

    def settings(self) -> dict[str, object]:
        decoding = self.prompt.decoding
        return {"num_runs": self.num_runs, "temperature": decoding.temperature,
                "top_p": decoding.top_p, "seed": decoding.seed, "tie_break": TIE_BREAK}  # fmt: skip

    def max_steps(self) -> int:
        return 1

    def start(self, problem: Problem) -> AgentState:
        return AgentState(problem=problem, phase="sample")

    def calls(self, state: AgentState) -> list[Call]:
        text = prompt_text(state.problem, self.prompt)
        return [Call("solver", self.ask(text, n=self.num_runs))]

    def advance(self, state: AgentState, outputs: list[tuple[Completion, ...]]) -> None:
        [samples] = outputs
        answers = [extract_answer(c.text) for c in samples]
        result = vote(answers)
        gold = state.problem.answer
        state.propose(samples[0].text, samples[0].finish_reason, answers[0])
        chosen = next((i for i, a in enumerate(answers) if a is not None and a == result.winner), 0)
        state.propose(samples[chosen].text, samples[chosen].finish_reason, result.winner)
        state.data = {
            "answers": answers,
            "clusters": [list(c) for c in result.clusters],
            "tied": result.tied,
            "pass": any(answers_match(a, gold) for a in answers),
        }
        state.trace[-1] |= {"answers": answers, "winner": result.winner, "tied": result.tied}
        state.finish()

    def extra_fields(self, state: AgentState) -> dict[str, object]:
        return {
            "votes": state.data["answers"],
            "clusters": state.data["clusters"],
            "tie_broken": state.data["tied"],
            "tie_break": TIE_BREAK if state.data["tied"] else None,
            "pass_at_k": state.data["pass"],
        }

    def extra_metrics(self, records: list[dict]) -> dict[str, object]:
        num = len(records)
        majority = sum(bool(r["correct"]) for r in records)
        passed = sum(bool(r.get("pass_at_k")) for r in records)
        k = self.num_runs
        return {
            f"maj@{k}": round(majority / num, 6) if num else 0.0,
            f"pass@{k}": round(passed / num, 6) if num else 0.0,
            "num_ties": sum(bool(r.get("tie_broken")) for r in records),
        }

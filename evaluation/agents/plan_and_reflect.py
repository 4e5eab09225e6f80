"""Plan, execute, integrate, reflect: sub-problems solved separately, then judged.

One iteration is four steps, each one engine call for all active problems: the
planner splits the problem into sub-problems; the executor solves every
sub-problem of every problem (all in the same call); the integrator combines
the sub-results into a solution with a final answer; the reflector accepts or
rejects it.  A rejected problem is planned again with the reflector's feedback,
up to ``max_iterations`` times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engines import Completion
from engines.errors import ConfigError
from evaluation.agents.base import Agent, AgentState, Call
from evaluation.agents.verdicts import parse_plan, parse_verdict
from evaluation.datasets import Problem
from evaluation.prompts import PromptSettings

PLAN = (
    "Break the following math problem into at most {limit} smaller sub-problems that, solved"
    " in order, give the answer. Write them as a numbered list, one per line, without"
    " solving them.\n\nProblem:\n{question}{feedback}\n\nSub-problems:\n"
)
EXECUTE = "Problem:\n{question}\n\nSolve only this sub-problem, step by step:\n{subproblem}"
INTEGRATE = (
    "Problem:\n{question}\n\nSolutions of its sub-problems:\n{results}\n\nCombine them into"
    " a complete solution, and put your final answer within \\boxed{{}}."
)
REFLECT = (
    "Review this solution to a math problem.\n\nProblem:\n{question}\n\nSolution:\n"
    '{solution}\n\nIs it right? End with "VERDICT: CORRECT" to accept it or "VERDICT:'
    ' INCORRECT" to reject it, then "FEEDBACK: <what to plan differently>".'
)
MAX_SUBRESULT_CHARS = 1500


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanAndReflect(Agent):
    """Planner, executor per sub-problem, integrator, reflector; iterate until accepted."""

    name = "plan_and_reflect"
    roles = ("planner", "executor", "integrator", "reflector")
    prompt: PromptSettings = field(default_factory=PromptSettings)
    max_iterations: int = 2
    max_subproblems: int = 3

    def __post_init__(self) -> None:
        for name in ("max_iterations", "max_subproblems"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    def settings(self) -> dict[str, object]:
        return {"max_iterations": self.max_iterations, "max_subproblems": self.max_subproblems}

    def max_steps(self) -> int:
        return 4 * self.max_iterations

    def start(self, problem: Problem) -> AgentState:
        return AgentState(problem=problem, phase="plan")

    def calls(self, state: AgentState) -> list[Call]:
        question = state.problem.question
        if state.phase == "plan":
            feedback = state.data.get("feedback")
            note = f"\n\nAn earlier attempt was rejected:\n{feedback}" if feedback else ""
            text = PLAN.format(limit=self.max_subproblems, question=question, feedback=note)
            return [Call("planner", self.ask(text))]
        if state.phase == "execute":
            texts = [EXECUTE.format(question=question, subproblem=s) for s in state.data["plan"]]
            return [Call("executor", self.ask(text)) for text in texts]
        if state.phase == "integrate":
            results = "\n\n".join(
                f"{i}. {sub}\n{result[:MAX_SUBRESULT_CHARS]}"
                for i, (sub, result) in enumerate(
                    zip(state.data["plan"], state.data["results"], strict=True), start=1
                )
            )
            return [Call("integrator", self.ask(INTEGRATE.format(question=question,
                                                                 results=results)))]  # fmt: skip
        if state.phase == "reflect":
            text = REFLECT.format(question=question, solution=state.final_response)
            return [Call("reflector", self.ask(text))]
        raise RuntimeError(f"{self.name}: no calls for phase {state.phase!r}")

    def advance(self, state: AgentState, outputs: list[tuple[Completion, ...]]) -> None:
        texts = [samples[0].text for samples in outputs]
        if state.phase == "plan":
            plan, how = parse_plan(texts[0], state.problem.question, self.max_subproblems)
            state.data["plan"] = plan
            state.trace[-1] |= {"plan": plan, "plan_reason": how}
            state.phase = "execute"
        elif state.phase == "execute":
            state.data["results"] = texts
            state.phase = "integrate"
        elif state.phase == "integrate":
            state.propose(texts[0], outputs[0][0].finish_reason)
            state.trace[-1]["answer"] = state.final_answer
            state.phase = "reflect"
        elif state.phase == "reflect":
            self._reflect(state, texts[0])

    def _reflect(self, state: AgentState, text: str) -> None:
        if state.apply_verdict(parse_verdict(text), self.max_iterations):
            state.phase = "plan"

    def extra_fields(self, state: AgentState) -> dict[str, object]:
        return {"stopped": state.data.get("stopped"), "plan": state.data.get("plan")}

    def extra_metrics(self, records: list[dict]) -> dict[str, object]:
        return {"num_accepted": sum(r.get("stopped") == "accepted" for r in records)}

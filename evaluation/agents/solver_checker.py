"""Solver and checker: solve, have the solution judged, revise with the feedback.

Each iteration is two steps: every active problem's solver call goes to the
engine together, then every checker call (on the ``checker`` engine when
``--checker_model`` is given).  A problem stops at a CORRECT verdict or after
``max_iterations`` attempts; its final answer is its last solution's.  The
checker sees the question and the solution, never the gold answer.

``solver_checker_chat`` keeps the solver's side as one growing chat transcript
(question, solution, feedback, revised solution, ...) sent through the model's
chat template; its checker is a one-turn chat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engines import Completion, GenerationRequest
from engines.errors import ConfigError
from evaluation.agents.base import Agent, AgentState, Call
from evaluation.agents.verdicts import parse_verdict
from evaluation.datasets import Problem
from evaluation.prompts import PromptSettings, prompt_text

CHECK_TEMPLATE = (
    "You are checking a solution to a math problem. Judge both the reasoning and the final"
    " answer.\n\nProblem:\n{question}\n\nSolution:\n{solution}\n\nCheck every step. End with"
    ' the line "VERDICT: CORRECT" or "VERDICT: INCORRECT"; if incorrect, add a line'
    ' "FEEDBACK: <what is wrong and how to fix it>".'
)
REVISE_TEMPLATE = (
    "{task}\n\nA previous attempt:\n{solution}\n\nA reviewer found a problem with it:\n"
    "{feedback}\n\nWrite a corrected solution, and put your final answer within \\boxed{{}}."
)
CHAT_FEEDBACK = (
    "A reviewer checked your solution and found a problem:\n{feedback}\n\n"
    "Please write a corrected solution, and put your final answer within \\boxed{{}}."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SolverChecker(Agent):
    """Solve, check, revise; up to ``max_iterations`` solutions per problem."""

    name = "solver_checker"
    roles = ("solver", "checker")
    prompt: PromptSettings = field(default_factory=PromptSettings)
    max_iterations: int = 3
    checker_model: str | None = None

    def __post_init__(self) -> None:
        if self.max_iterations < 1:
            raise ConfigError(f"max_iterations must be >= 1, got {self.max_iterations}")

    def settings(self) -> dict[str, object]:
        return {"max_iterations": self.max_iterations, "checker_model": self.checker_model}

    def steps_per_iteration(self) -> int:
        return 2

    def max_steps(self) -> int:
        return self.steps_per_iteration() * self.max_iterations

    def start(self, problem: Problem) -> AgentState:
        return AgentState(problem=problem, phase="solve")

    def calls(self, state: AgentState) -> list[Call]:
        if state.phase == "solve":
            return [Call("solver", self.solve_request(state))]
        if state.phase == "check":
            return [Call("checker", self.check_request(state, state.final_response))]
        raise RuntimeError(f"{self.name}: no calls for phase {state.phase!r}")

    def advance(self, state: AgentState, outputs: list[tuple[Completion, ...]]) -> None:
        [(completion, *_)] = outputs
        if state.phase == "solve":
            self.accept_solution(state, completion)
        elif state.phase == "check":
            self.judge(state, completion.text)

    # -- the solver's side ------------------------------------------------------------
    def solve_request(self, state: AgentState) -> GenerationRequest:
        task = prompt_text(state.problem, self.prompt)
        if "feedback" not in state.data:
            return self.ask(task)
        text = REVISE_TEMPLATE.format(
            task=task, solution=state.final_response, feedback=state.data["feedback"]
        )
        return self.ask(text)

    def accept_solution(self, state: AgentState, completion: Completion) -> None:
        """A new solution: take it, then have it checked."""
        state.propose(completion.text, completion.finish_reason)
        state.trace[-1]["answer"] = state.final_answer
        state.phase = "check"

    # -- the checker's side -----------------------------------------------------------
    def check_request(self, state: AgentState, solution: str) -> GenerationRequest:
        text = CHECK_TEMPLATE.format(question=state.problem.question, solution=solution)
        return self.ask(text)

    def judge(self, state: AgentState, checker_text: str) -> None:
        """Read the verdict: stop at CORRECT or the limit, else revise with the feedback."""
        verdict = parse_verdict(checker_text)
        if state.apply_verdict(verdict, self.max_iterations):
            self.on_feedback(state, verdict.feedback)
            state.phase = "solve"

    def on_feedback(self, state: AgentState, feedback: str) -> None:  # noqa: B027 - hook
        """Hook for variants that keep their own transcript."""

    def extra_fields(self, state: AgentState) -> dict[str, object]:
        return {"stopped": state.data.get("stopped")}

    def extra_metrics(self, records: list[dict]) -> dict[str, object]:
        return {"num_accepted": sum(r.get("stopped") == "accepted" for r in records)}


@dataclass(frozen=True, slots=True, kw_only=True)
class SolverCheckerChat(SolverChecker):
    """The solver's attempts and the feedback as one growing chat transcript."""

    name = "solver_checker_chat"

    def solve_request(self, state: AgentState) -> GenerationRequest:
        if "messages" not in state.data:
            system = self.prompt.system_prompt
            opening = [{"role": "system", "content": system}] if system else []
            task = prompt_text(state.problem, self.prompt)
            state.data["messages"] = [*opening, {"role": "user", "content": task}]
        return self.request(messages=state.data["messages"])

    def accept_solution(self, state: AgentState, completion: Completion) -> None:
        state.data["messages"].append({"role": "assistant", "content": completion.text})
        SolverChecker.accept_solution(self, state, completion)

    def check_request(self, state: AgentState, solution: str) -> GenerationRequest:
        text = CHECK_TEMPLATE.format(question=state.problem.question, solution=solution)
        return self.request(messages=[{"role": "user", "content": text}])

    def on_feedback(self, state: AgentState, feedback: str) -> None:
        message = CHAT_FEEDBACK.format(feedback=feedback)
        state.data["messages"].append({"role": "user", "content": message})

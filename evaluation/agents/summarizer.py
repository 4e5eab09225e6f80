"""Solver, summarizer, checker: the checker reads a condensed solution.

Each iteration is up to four steps, each one engine call for all active
problems: solve, summarize the solution for the checker, check the summary,
and (when the verdict is INCORRECT and attempts remain) summarize the checker's
feedback for the solver.  The summarizer runs on the solver's engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from engines import Completion
from evaluation.agents.base import AgentState, Call
from evaluation.agents.solver_checker import SolverChecker
from evaluation.agents.verdicts import MAX_FEEDBACK_CHARS

SOLUTION_SUMMARY = (
    "Summarize the following solution to a math problem for a reviewer: keep every"
    " calculation and the final answer, drop repetition.\n\nProblem:\n{question}\n\n"
    "Solution:\n{solution}\n\nSummary:"
)
FEEDBACK_SUMMARY = (
    "A reviewer judged a solution to this math problem incorrect. Condense the review into"
    " short, concrete advice for the next attempt.\n\nProblem:\n{question}\n\n"
    "Review:\n{feedback}\n\nAdvice:"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SolverCheckerSummarizer(SolverChecker):
    """:class:`SolverChecker` with summaries between solver and checker, both ways."""

    name = "solver_checker_summarizer"
    roles = ("solver", "summarizer", "checker")

    def steps_per_iteration(self) -> int:
        return 4

    def calls(self, state: AgentState) -> list[Call]:
        question = state.problem.question
        if state.phase == "summarize_solution":
            text = SOLUTION_SUMMARY.format(question=question, solution=state.final_response)
            return [Call("summarizer", self.ask(text))]
        if state.phase == "summarize_feedback":
            text = FEEDBACK_SUMMARY.format(question=question, feedback=state.data["review"])
            return [Call("summarizer", self.ask(text))]
        if state.phase == "check":  # the checker reads the summary, not the full solution
            return [Call("checker", self.check_request(state, state.data["summary"]))]
        return SolverChecker.calls(self, state)

    def advance(self, state: AgentState, outputs: list[tuple[Completion, ...]]) -> None:
        [(completion, *_)] = outputs
        if state.phase == "summarize_solution":
            state.data["summary"] = completion.text
            state.phase = "check"
        elif state.phase == "summarize_feedback":
            state.data["feedback"] = completion.text.strip()[:MAX_FEEDBACK_CHARS]
            state.phase = "solve"
        else:
            SolverChecker.advance(self, state, outputs)

    def accept_solution(self, state: AgentState, completion: Completion) -> None:
        SolverChecker.accept_solution(self, state, completion)
        state.phase = "summarize_solution"

    def on_feedback(self, state: AgentState, feedback: str) -> None:
        # judge() stored the raw review as the feedback; the solver gets its summary
        state.data["review"] = feedback
        del state.data["feedback"]

    def judge(self, state: AgentState, checker_text: str) -> None:
        SolverChecker.judge(self, state, checker_text)
        if not state.is_done:
            state.phase = "summarize_feedback"

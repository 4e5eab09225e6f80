"""Tool use: the model may write Python; the sandbox runs it; the output goes back.

``python_tools``: solve (the prompt invites ```python blocks that print their
results); a problem whose response holds code has it run in
:mod:`evaluation.sandbox` (a separate, locked-down process, never ``exec`` here),
then the model sees the output and states the final answer.  That repeats while
the model writes code, up to ``max_iterations`` tool runs.

``solver_checker_with_tools``: :class:`SolverChecker` whose solver may use the
tool once per attempt before the checker judges the result.

The snippets of one step run concurrently (the sandbox is thread-safe), so a
step's tool time is about its slowest snippet, not the sum.  A snippet that
loops, crashes or floods its output becomes data in the trace; the run goes on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from engines import Completion
from engines.errors import ConfigError
from evaluation.agents.base import Agent, AgentState, Call
from evaluation.agents.solver_checker import SolverChecker
from evaluation.datasets import Problem
from evaluation.prompts import PromptSettings, prompt_text
from evaluation.sandbox import (
    SandboxLimits,
    extract_code_blocks,
    require_isolation,
    run_python,
)

TOOL_HINT = (
    "\nYou may write Python code in a ```python block; it will be run and what it prints"
    " will be shown to you."
)
FOLLOW_UP = (
    "{task}\n\nYour work so far:\n{response}\n\nYour code printed:\n```output\n{output}\n```\n"
    "Using this output, finish the solution and put your final answer within \\boxed{{}}."
)
MAX_OUTPUT_CHARS = 2000
MAX_WORKERS = 4


def tool_task(problem: Problem, prompt: PromptSettings) -> str:
    return prompt_text(problem, prompt) + TOOL_HINT


def run_tools(states: list[AgentState], limits: SandboxLimits) -> None:
    """Run the code of every state in phase ``run_tool``; each moves on to ``tool_answer``."""
    waiting = [s for s in states if s.phase == "run_tool"]
    if not waiting:
        return
    codes = ["\n\n".join(extract_code_blocks(s.final_response)) for s in waiting]
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(waiting))) as pool:
        results = list(pool.map(lambda code: _run(code, limits), codes))
    for state, code, result in zip(waiting, codes, results, strict=True):
        state.trace[-1]["tool"] = {"code": code, **result}
        state.data["tool_output"] = result["output"]
        state.data["num_tool_runs"] = state.data.get("num_tool_runs", 0) + 1
        state.phase = "tool_answer"


def _run(code: str, limits: SandboxLimits) -> dict[str, object]:
    try:
        result = run_python(code, limits)
    except Exception as error:  # the sandbox promises data, not exceptions; stay alive anyway
        message = f"sandbox failed: {type(error).__name__}: {error}"
        return {"output": message, "exit_code": None, "killed_reason": message}
    output = result.stdout
    if not result.ok:
        why = result.killed_reason or f"exit code {result.exit_code}"
        output = f"{output}\n[error: {why}]\n{result.stderr[-MAX_OUTPUT_CHARS // 2 :]}".strip()
    return {
        "output": output[:MAX_OUTPUT_CHARS],
        "exit_code": result.exit_code,
        "killed_reason": result.killed_reason,
        "truncated": result.truncated,
        "duration_s": round(result.duration_seconds, 3),
    }


def wants_tool(state: AgentState, max_runs: int) -> bool:
    """Whether the current solution holds code and the tool budget allows running it."""
    has_code = bool(extract_code_blocks(state.final_response))
    return has_code and state.data.get("num_tool_runs", 0) < max_runs


def follow_up(state: AgentState, prompt: PromptSettings) -> str:
    task = tool_task(state.problem, prompt)
    return FOLLOW_UP.format(task=task, response=state.final_response,
                            output=state.data["tool_output"] or "(nothing)")  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class PythonTools(Agent):
    """Solve with an optional Python tool: code runs sandboxed, output feeds the answer."""

    name = "python_tools"
    prompt: PromptSettings = field(default_factory=PromptSettings)
    max_iterations: int = 2  # tool runs per problem
    limits: SandboxLimits = field(default_factory=SandboxLimits)

    def __post_init__(self) -> None:
        if self.max_iterations < 1:
            raise ConfigError(f"max_iterations must be >= 1, got {self.max_iterations}")
        require_isolation()  # refuse the run now, not after the model loaded

    def settings(self) -> dict[str, object]:
        return {"max_iterations": self.max_iterations,
                "sandbox_wall_seconds": self.limits.wall_seconds}  # fmt: skip

    def max_steps(self) -> int:
        return 1 + self.max_iterations

    def start(self, problem: Problem) -> AgentState:
        return AgentState(problem=problem, phase="solve")

    def calls(self, state: AgentState) -> list[Call]:
        if state.phase == "solve":
            return [Call("solver", self.ask(tool_task(state.problem, self.prompt)))]
        return [Call("solver", self.ask(follow_up(state, self.prompt)))]

    def advance(self, state: AgentState, outputs: list[tuple[Completion, ...]]) -> None:
        [(completion, *_)] = outputs
        state.propose(completion.text, completion.finish_reason)
        state.trace[-1]["answer"] = state.final_answer
        if wants_tool(state, self.max_iterations):
            state.phase = "run_tool"
            state.iteration = state.data.get("num_tool_runs", 0) + 1
        else:
            state.finish()

    def act(self, states: list[AgentState]) -> None:
        run_tools(states, self.limits)

    def extra_fields(self, state: AgentState) -> dict[str, object]:
        return {"num_tool_runs": state.data.get("num_tool_runs", 0)}

    def extra_metrics(self, records: list[dict]) -> dict[str, object]:
        return {"num_tool_runs": sum(r.get("num_tool_runs", 0) for r in records)}


@dataclass(frozen=True, slots=True, kw_only=True)
class SolverCheckerWithTools(SolverChecker):
    """:class:`SolverChecker` whose solver may run Python once per attempt."""

    name = "solver_checker_with_tools"
    limits: SandboxLimits = field(default_factory=SandboxLimits)

    def __post_init__(self) -> None:
        SolverChecker.__post_init__(self)
        require_isolation()  # refuse the run now, not after the model loaded

    def settings(self) -> dict[str, object]:
        return SolverChecker.settings(self) | {"sandbox_wall_seconds": self.limits.wall_seconds}

    def steps_per_iteration(self) -> int:
        return 3

    def solve_request(self, state: AgentState):  # noqa: ANN201 - a GenerationRequest
        if "feedback" not in state.data:
            return self.ask(tool_task(state.problem, self.prompt))
        return SolverChecker.solve_request(self, state)

    def calls(self, state: AgentState) -> list[Call]:
        if state.phase == "tool_answer":
            return [Call("solver", self.ask(follow_up(state, self.prompt)))]
        return SolverChecker.calls(self, state)

    def advance(self, state: AgentState, outputs: list[tuple[Completion, ...]]) -> None:
        if state.phase == "tool_answer":
            [(completion, *_)] = outputs
            state.propose(completion.text, completion.finish_reason)
            state.trace[-1]["answer"] = state.final_answer
            state.phase = "check"
            return
        SolverChecker.advance(self, state, outputs)

    def accept_solution(self, state: AgentState, completion: Completion) -> None:
        SolverChecker.accept_solution(self, state, completion)
        if wants_tool(state, state.iteration):  # one tool run per attempt
            state.phase = "run_tool"

    def act(self, states: list[AgentState]) -> None:
        run_tools(states, self.limits)

    def extra_fields(self, state: AgentState) -> dict[str, object]:
        return SolverChecker.extra_fields(self, state) | {
            "num_tool_runs": state.data.get("num_tool_runs", 0)
        }

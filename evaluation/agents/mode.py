"""The driver: step every active problem's agent state together, persisting each step.

One step gathers the pending calls of all active problems, groups them by the
engine their role uses (and by decoding, which one batch must share), makes one
``generate`` call per group, and hands the completions back to the agent.  After
the step, every stepped problem's state is appended to the record file as an
``agent_state`` line; finished problems then go to the runner as ordinary results.
On resume the latest ``agent_state`` of each unfinished problem is restored, so
the steps it already took are not redone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from engines import Completion, Engine
from evaluation.agents.base import CASES, Agent, AgentState, outcome_fields
from evaluation.datasets import Problem
from evaluation.grading import answers_match
from evaluation.modes import ModeBatch, OpenEngine, ProblemResult
from evaluation.records import RecordStore

STATE_KIND = "agent_state"


def latest_states(records: Sequence[dict]) -> dict[str, dict]:
    """The last persisted agent state of every problem id."""
    return {r["id"]: r for r in records if r.get("kind") == STATE_KIND}


@dataclass(kw_only=True)
class AgentMode:
    """An evaluation mode (see :class:`evaluation.modes.Mode`) that runs an agent.

    Args:
        agent: the agent and its settings.
        store: the run's record file: states are restored from and appended to it.
        role_engines: engines for roles that do not use the main engine (e.g. a
            separate ``checker``); every other role uses the engine of ``run_batches``.
    """

    agent: Agent
    store: RecordStore | None = None
    role_engines: Mapping[str, Engine] = field(default_factory=dict)
    checker_model: str | None = None
    is_stepwise: bool = True

    @property
    def name(self) -> str:
        return self.agent.name

    def attach(self, store: RecordStore, open_engine: OpenEngine) -> None:
        """Save states to ``store`` after every step; load a separate checker model if any."""
        self.store = store
        if self.checker_model:
            self.role_engines = {"checker": open_engine(self.checker_model)}

    def settings(self) -> dict[str, object]:
        """The prompt and the agent's settings: a resume must match both."""
        return {
            "prompt": self.agent.prompt.as_record(),
            "agent": {"name": self.agent.name, **self.agent.settings()},
        }

    def run_batches(self, engine: Engine, problems: Sequence[Problem]) -> Iterator[ModeBatch]:
        saved = latest_states(self.store.records) if self.store else {}
        states = [self._restore(problem, saved.get(problem.id)) for problem in problems]
        finished = [s for s in states if s.is_done]  # crashed between state and result lines
        if finished:
            yield ModeBatch(results=tuple(self._result(s) for s in finished), engine_s=0.0)
        active = [s for s in states if not s.is_done]
        while active:
            engine_s = self._step(engine, active)
            self.agent.act(active)
            for state in active:
                state.step += 1
                if state.step >= self.agent.max_steps() and not state.is_done:
                    limit = self.agent.max_steps()  # the engine-call bound must hold
                    raise RuntimeError(f"{self.agent.name} did not finish in max_steps={limit}")
            self._persist(active)
            done = tuple(self._result(s) for s in active if s.is_done)
            yield ModeBatch(results=done, engine_s=engine_s)
            active = [s for s in active if not s.is_done]

    def extra_metrics(self, records: list[dict]) -> dict[str, object]:
        counts = {case: sum(r.get("case") == case for r in records) for case in CASES}
        num = len(records)
        first = sum(bool(r.get("first_correct")) for r in records)
        settings = {f"agent_{k}": v for k, v in self.agent.settings().items() if k != "prompt"}
        return (
            {"agent": self.agent.name, **settings}
            | {f"case_{case}": count for case, count in counts.items()}
            | {"first_accuracy": round(first / num, 6) if num else 0.0}
            | self.agent.extra_metrics(records)
        )

    def _restore(self, problem: Problem, saved: dict | None) -> AgentState:
        if saved is None:
            return self.agent.start(problem)
        return AgentState.from_record(problem, saved["state"])

    def _step(self, engine: Engine, active: list[AgentState]) -> float:
        """Run every active state's calls, one ``generate`` per (engine, decoding) group."""
        calls = [(state, self.agent.calls(state)) for state in active]
        groups: dict[tuple[int, object], list[tuple[int, int]]] = {}
        for s, (state, wanted) in enumerate(calls):
            if not wanted:
                raise RuntimeError(
                    f"{self.agent.name}: active problem {state.problem.id} has no call"
                )
            for c, call in enumerate(wanted):
                target = self.role_engines.get(call.role, engine)
                groups.setdefault((id(target), call.request.decoding), []).append((s, c))
        outputs: list[list[tuple[Completion, ...] | None]] = [[None] * len(w) for _, w in calls]
        engine_s = 0.0
        for members in groups.values():
            first_role = calls[members[0][0]][1][members[0][1]].role
            target = self.role_engines.get(first_role, engine)
            started = time.perf_counter()
            results = target.generate([calls[s][1][c].request for s, c in members])
            engine_s += time.perf_counter() - started
            for (s, c), result in zip(members, results, strict=True):
                outputs[s][c] = result
        for (state, wanted), result in zip(calls, outputs, strict=True):
            for call, completions in zip(wanted, result, strict=True):
                state.log_call(call.role, call.request, completions)
            self.agent.advance(state, result)
        return engine_s

    def _persist(self, states: list[AgentState]) -> None:
        if self.store is None:
            return
        lines = [
            {"kind": STATE_KIND, "id": s.problem.id, "step": s.step, "state": s.as_record()}
            for s in states
        ]
        self.store.append(lines)

    def _result(self, state: AgentState) -> ProblemResult:
        outcome = outcome_fields(state)
        correct = answers_match(state.final_answer, state.problem.answer)
        return ProblemResult(
            problem=state.problem,
            response=state.final_response,
            predicted=state.final_answer,
            correct=correct,
            prompt_tokens=state.prompt_tokens,
            completion_tokens=state.completion_tokens,
            finish_reason=state.finish_reason,
            extra={"agent": self.agent.name, **outcome, **self.agent.extra_fields(state)},
        )

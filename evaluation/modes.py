"""Evaluation modes: how problems become graded per-problem results.

A mode turns a slice of problems into batches of :class:`ProblemResult`,
streaming them as the engine finishes each batch so the runner can persist
them at once.  ``standard`` is one greedy (or sampled) answer per problem;
agents (self-consistency, refinement, ...) are further modes that put their
own fields (trace, first and final answer, ...) in ``ProblemResult.extra``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from engines import Engine
from evaluation.datasets import Problem
from evaluation.grading import grade
from evaluation.prompts import PromptSettings, build_request

if TYPE_CHECKING:
    from evaluation.records import RecordStore

# Loads a model on the run's backend and settings; the run closes it when it ends.
OpenEngine = Callable[[str], Engine]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProblemResult:
    """The graded outcome of one problem.  ``extra`` must be JSON-serialisable."""

    problem: Problem
    response: str
    predicted: str | None
    correct: bool
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    extra: Mapping[str, object] = field(default_factory=dict)

    def as_record(self, index: int) -> dict[str, object]:
        """The ``problem`` line of the record file (``index``: position in the dataset)."""
        return {
            "kind": "problem",
            "id": self.problem.id,
            "index": index,
            "question": self.problem.question,
            "gold": self.problem.answer,
            "predicted": self.predicted,
            "correct": self.correct,
            "response": self.response,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
            **self.extra,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeBatch:
    """Results finished together, and the seconds spent inside the engine for them."""

    results: tuple[ProblemResult, ...]
    engine_s: float


class Mode(Protocol):
    """What the runner needs from a mode.

    ``is_stepwise`` modes (agents) advance every problem of the run one engine
    call per step, so the run is not cut into chunks.
    """

    name: str
    is_stepwise: bool

    def attach(self, store: RecordStore, open_engine: OpenEngine) -> None:
        """Called once the main engine is loaded: the run's record file, and a way to load
        more models (e.g. a separate checker); most modes need neither."""
        ...

    def settings(self) -> dict[str, object]:
        """Everything that changes what is generated or graded (stored with the run)."""
        ...

    def run_batches(self, engine: Engine, problems: Sequence[Problem]) -> Iterator[ModeBatch]:
        """Generate and grade ``problems``, yielding each batch as soon as it is done."""
        ...

    def extra_metrics(self, records: list[dict]) -> dict[str, object]:
        """Mode-specific columns for ``metrics.csv``, computed from problem records."""
        ...


def timed_batches(engine: Engine, requests: Sequence) -> Iterator[tuple[object, float]]:
    """``engine.iter_batches(requests)`` with the seconds spent producing each batch."""
    iterator = iter(engine.iter_batches(requests))
    while True:
        started = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        yield batch, time.perf_counter() - started


@dataclass(frozen=True, slots=True, kw_only=True)
class StandardMode:
    """One completion per problem, graded against the gold answer."""

    prompt: PromptSettings
    name: str = "standard"
    is_stepwise: bool = False

    def attach(self, store: RecordStore, open_engine: OpenEngine) -> None:
        pass

    def settings(self) -> dict[str, object]:
        return {"prompt": self.prompt.as_record()}

    def run_batches(self, engine: Engine, problems: Sequence[Problem]) -> Iterator[ModeBatch]:
        requests = [build_request(problem, self.prompt) for problem in problems]
        for batch, engine_s in timed_batches(engine, requests):
            results = []
            for index, outputs in zip(batch.indices, batch.outputs, strict=True):
                completion = outputs[0]
                verdict = grade(completion.text, problems[index].answer)
                results.append(
                    ProblemResult(
                        problem=problems[index],
                        response=completion.text,
                        predicted=verdict.predicted,
                        correct=verdict.correct,
                        prompt_tokens=completion.prompt_tokens,
                        completion_tokens=completion.completion_tokens,
                        finish_reason=completion.finish_reason,
                    )
                )
            yield ModeBatch(results=tuple(results), engine_s=engine_s)

    def extra_metrics(self, records: list[dict]) -> dict[str, object]:
        return {}

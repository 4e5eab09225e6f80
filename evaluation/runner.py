"""The run loop: generate, grade and persist, one engine batch at a time.

Each batch the mode yields is appended to the record file (flushed and fsynced)
before the next one is asked for, so a crash loses at most the batch in
flight.  Problems already in the record file are skipped, which is all that
``--resume`` needs.  An exception from the engine is recorded as an ``error``
line for the problems it left unfinished; those are generated again next time.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from common.io import DiskFullError
from engines import Engine
from evaluation.datasets import Problem
from evaluation.modes import Mode
from evaluation.records import RecordStore

logger = logging.getLogger(__name__)

# called after each persisted batch with the new problem records
BatchCallback = Callable[[list[dict]], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    """What one session of a run did (the records hold the full story)."""

    session: str
    num_attempted: int
    num_done: int
    errors: tuple[str, ...]


def run_problems(
    engine: Engine,
    mode: Mode,
    problems: Sequence[Problem],
    store: RecordStore,
    *,
    first_index: int = 0,
    chunk_size: int | None = None,
    on_batch: BatchCallback | None = None,
) -> RunOutcome:
    """Run ``mode`` over the ``problems`` not yet done in ``store``.

    Args:
        engine: a loaded engine; it decides its own batches.
        mode: how problems become graded results.
        problems: the whole planned slice, in dataset order.
        store: the run's record file.
        first_index: dataset index of ``problems[0]`` (the ``--start``).
        chunk_size: problems handed to the engine per call (``None``: all at
            once).  Smaller chunks bound what a crash can lose on engines that
            return a whole call at once.
        on_batch: progress hook, called after each batch reached the disk.
    """
    session = uuid.uuid4().hex[:12]
    index_of = {problem.id: first_index + i for i, problem in enumerate(problems)}
    pending = [problem for problem in problems if problem.id not in store.done]
    size = chunk_size or max(len(pending), 1)
    errors: list[str] = []
    num_done = 0
    for begin in range(0, len(pending), size):
        chunk = pending[begin : begin + size]
        unfinished = {problem.id for problem in chunk}
        mark = time.perf_counter()
        try:
            for batch in mode.run_batches(engine, chunk):
                records = [r.as_record(index_of[r.problem.id]) for r in batch.results]
                ids = [r["id"] for r in records]
                wall = time.perf_counter() - mark
                store.append([*records, _batch_record(session, ids, batch.engine_s, wall)])
                mark = time.perf_counter()
                unfinished.difference_update(ids)
                num_done += len(records)
                if on_batch is not None:
                    on_batch(records)
        except DiskFullError:  # the disk failed, not the generation: no record would fit
            raise
        except Exception as error:  # failures are data: record them, retry on resume
            logger.warning("generation failed for %d problems", len(unfinished), exc_info=True)
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            errors.append(message)
            ordered = [p.id for p in chunk if p.id in unfinished]
            store.append([{"kind": "error", "session": session, "ids": ordered, "error": message}])
    return RunOutcome(
        session=session, num_attempted=len(pending), num_done=num_done, errors=tuple(errors)
    )


def _batch_record(session: str, ids: list[str], engine_s: float, wall_s: float) -> dict:
    # Work done after the previous append (grading, writing) is in this batch's
    # wall time; overhead is whatever of it was not spent inside the engine.
    return {
        "kind": "batch",
        "session": session,
        "ids": ids,
        "engine_s": round(engine_s, 6),
        "overhead_s": round(max(wall_s - engine_s, 0.0), 6),
    }

"""Evaluate a model on a dataset: plan, load the engine, run, write the reports.

A notebook calls :func:`evaluate`; ``infertune eval`` (and ``python -m
evaluation.eval``, which runs that command) builds the same
:class:`~evaluation.request.EvalRequest` from flags::

    from evaluation import evaluate

    result = evaluate(model="synthetic:tiny", dataset="synthetic", count=8, batch_size=4,
                      results_dir="results")
    result.summary.accuracy, result.run_dir

Every input check runs before the model loads (:func:`evaluation.plan.build_plan`);
``resume=DIR`` continues an interrupted run in DIR.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.io import DiskFullError
from common.stopping import Stopped, stop_on_signals
from evaluation.errors import ResultsError
from evaluation.records import done_problems
from evaluation.request import EvalRequest

if TYPE_CHECKING:
    from engines import Engine
    from evaluation.plan import RunPlan
    from evaluation.records import RecordStore
    from evaluation.reports import Summary


class RunStopped(ResultsError):
    """A signal stopped the run; it exits 128 + the signal, like a shell."""

    def __init__(self, message: str, *, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, slots=True, kw_only=True)
class EvalResult:
    """A finished (or partly failed) run: its folder, its metrics, what failed."""

    run_dir: Path
    summary: Summary
    settings: dict[str, object]
    errors: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """0, or 1 when some problems failed (rerun with ``resume=run_dir``)."""
        return 1 if self.summary.num_failed else 0


def evaluate(**request: Any) -> EvalResult:
    """Run one evaluation; the keywords are :class:`~evaluation.request.EvalRequest`'s fields.

    Raises:
        InfertuneError: bad input (before any model loads) or a model that cannot load.
    """
    return run_evaluation(EvalRequest(**request))


def run_evaluation(request: EvalRequest) -> EvalResult:
    """Plan ``request`` (every input check) and execute the plan."""
    from evaluation.plan import build_plan

    return execute(build_plan(request), detailed=request.detailed)


def execute(plan: RunPlan, *, detailed: bool = False) -> EvalResult:
    """Generate what ``plan`` still lacks and write the reports.

    Args:
        plan: The checked plan (standard mode or an agent).
        detailed: Print every problem's verdict as it finishes.

    Raises:
        RunStopped: SIGTERM or SIGINT stopped the run; the reports match the
            records so far and the message says how to resume.
        DiskFullError: the disk filled up; the records end on a whole record.
    """
    from evaluation.run_folder import open_run_folder

    try:
        with (
            stop_on_signals(),
            open_run_folder(plan.run_dir, plan.settings, is_resume=plan.is_resume) as store,
        ):
            return _run_and_report(plan, store, detailed)
    except Stopped as stop:
        raise RunStopped(
            f"stopped by {stop}; resume with --resume {plan.run_dir}", exit_code=stop.exit_code
        ) from None
    except DiskFullError as error:
        if not plan.run_dir.exists():  # nothing was generated, and nothing is left
            raise
        raise DiskFullError(f"{error}, then resume with --resume {plan.run_dir}") from None


def _run_and_report(plan: RunPlan, store: RecordStore, detailed: bool) -> EvalResult:
    from evaluation.records import read_records
    from evaluation.reports import write_reports

    errors: tuple[str, ...] = ()
    try:
        if sum(p.id in store.done for p in plan.problems) < len(plan.problems):
            errors = _generate(plan, store, detailed)  # a finished run needs no model
    finally:  # even when stopped, the derived files match the records
        # read back from the disk: a stop between a write and its bookkeeping loses nothing
        records = read_records(store.path)[0]
        if records or plan.is_resume:
            extra = plan.mode.extra_metrics(list(done_problems(records).values()))
            summary = write_reports(plan.run_dir, plan.settings, records, extra)
    return EvalResult(run_dir=plan.run_dir, summary=summary, settings=plan.settings, errors=errors)


def _generate(plan: RunPlan, store: RecordStore, detailed: bool) -> tuple[str, ...]:
    from engines import load_engine
    from evaluation.progress import RunProgress
    from evaluation.results import save_settings
    from evaluation.runner import run_problems

    with ExitStack() as stack:

        def open_engine(model: str) -> Engine:  # closed when the run ends
            return stack.enter_context(load_engine(plan.backend, model, **plan.engine_settings))

        engine = open_engine(plan.settings["model"])
        plan.mode.attach(store, open_engine)
        # the resolved settings, defaults included; a test double has none to report
        resolved = engine.settings() or plan.engine_settings
        plan.settings["engine"] = plan.settings["sessions"][-1]["engine"] = resolved
        save_settings(plan.run_dir, plan.settings)
        done = sum(p.id in store.done for p in plan.problems)
        with RunProgress(len(plan.problems), done, detailed=detailed) as progress:
            outcome = run_problems(
                engine,
                plan.mode,
                plan.problems,
                store,
                first_index=plan.settings["start"],
                chunk_size=plan.chunk_size,
                on_batch=progress.on_batch,
            )
    return outcome.errors


if __name__ == "__main__":
    import sys

    from commands.eval import main  # the command layer, loaded only when run as a program

    sys.exit(main(prog="python -m evaluation.eval"))

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

import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluation.request import EvalRequest

if TYPE_CHECKING:
    from engines import Engine
    from evaluation.plan import RunPlan
    from evaluation.records import RecordStore
    from evaluation.reports import Summary


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
    """
    from evaluation.records import RECORDS_FILE, RecordStore
    from evaluation.reports import write_reports
    from evaluation.results import save_settings

    plan.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        with RecordStore(plan.run_dir) as store:
            done = sum(p.id in store.done for p in plan.problems)
            errors: tuple[str, ...] = ()
            try:
                if done < len(plan.problems):  # a finished run needs no model for its reports
                    errors = _generate(plan, store, done, detailed)
                else:
                    save_settings(plan.run_dir, plan.settings)
            finally:  # even on Ctrl-C the derived files match the records
                if store.records or plan.is_resume:
                    extra = plan.mode.extra_metrics(list(store.done.values()))
                    summary = write_reports(plan.run_dir, plan.settings, store.records, extra)
    except BaseException:
        records = plan.run_dir / RECORDS_FILE
        if not plan.is_resume and (not records.exists() or not records.stat().st_size):
            # nothing was generated (e.g. the model failed to load): leave no empty folder
            shutil.rmtree(plan.run_dir, ignore_errors=True)
        raise
    return EvalResult(run_dir=plan.run_dir, summary=summary, settings=plan.settings, errors=errors)


def _generate(plan: RunPlan, store: RecordStore, done: int, detailed: bool) -> tuple[str, ...]:
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

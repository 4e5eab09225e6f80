"""``python -m evaluation.eval`` (also ``infertune eval``): evaluate a model on a dataset.

Example::

    python -m evaluation.eval --model Qwen/Qwen2.5-Math-1.5B --round r1 --dataset gsm8k \\
        --count 100 --mode standard --batch_size 16 --inference_backend transformers

Parse, plan (every input check, before the model loads), load the engine, run,
render.  ``--resume DIR`` continues an interrupted run in DIR.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from engines.errors import run_reporting_errors

if TYPE_CHECKING:
    from engines import Engine
    from evaluation.plan import RunPlan
    from evaluation.records import RecordStore

# Opens the engine(s) a run generates with, on an ExitStack that closes them; an
# agent with a separate checker model opens two (see evaluation.eval_agent).
EngineOpener = Callable[["RunPlan", "RecordStore", ExitStack], "Engine"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags users know from the old system, plus a few new ones."""
    add = parser.add_argument
    add("--model", help="model id or path (e.g. synthetic:tiny, Qwen/Qwen2.5-Math-1.5B)")
    add("--round", help="run label, the first part of the results folder name (default: run)")
    add("--dataset", help="gsm8k, math500, svamp, gsm_hard or synthetic")
    add("--count", type=int, help="number of problems, 0 = all (default: 0)")
    add("--start", type=int, help="index of the first problem (default: 0)")
    add("--mode", help="evaluation mode (default: standard)")
    add("--batch_size", type=int, help="transformers: requests per batch; vLLM: max_num_seqs")
    add("--inference_backend", choices=("transformers", "vllm"), help="default: transformers")
    add("--resume", metavar="DIR", help="continue the run in this results folder")
    add("--data_dir", help="folder with <dataset>/test.jsonl (default: $INFERTUNE_DATA_DIR, ...)")
    add("--results_dir", default="results", help="where run folders go (default: ./results)")
    add("--max_new_tokens", type=int, help="generation budget per problem (default: 1024)")
    add("--apply_chat_template", action="store_true", default=None,
        help="send the prompt as a chat message through the model's chat template")  # fmt: skip
    add("--temperature", type=float, help="0 = greedy (default)")
    add("--top_p", type=float, help="nucleus sampling threshold (default: 1.0)")
    add("--seed", type=int, help="sampling seed")
    add("--dtype", help="model dtype: auto, float32, bfloat16, float16")
    add("--engine_arg", action="append", metavar="KEY=VALUE",
        help="extra engine setting, repeatable (e.g. kv_cache_memory_bytes=67108864)")  # fmt: skip
    add("--detailed", action="store_true", help="print every problem's verdict as it finishes")
    add("--profile", metavar="auto|PATH",
        help="apply a tuned profile (backend, batch, engine knobs); flags win")  # fmt: skip
    try:  # agents (evaluation.eval_agent) run through the same command with --agent NAME
        from evaluation.eval_agent import add_agent_arguments
    except ImportError:
        return
    add_agent_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run one evaluation; returns 0, or 1 when some problems failed (retry with --resume)."""
    if getattr(args, "agent", None) or _resumes_agent_run(args):
        from evaluation.eval_agent import run as run_agent

        return run_agent(args)
    from evaluation.plan import build_plan

    return execute(build_plan(args, resolve_profile(args)), detailed=args.detailed)


def open_engine(plan: RunPlan, store: RecordStore, stack: ExitStack) -> Engine:
    """Load the plan's engine, closed when ``stack`` unwinds (the default :data:`EngineOpener`)."""
    from engines import load_engine

    model = plan.settings["model"]
    return stack.enter_context(load_engine(plan.backend, model, **plan.engine_settings))


def execute(plan: RunPlan, *, detailed: bool, open_engines: EngineOpener = open_engine) -> int:
    """Generate what ``plan`` still lacks, write the reports and print the summary.

    Args:
        plan: The checked plan (standard mode or an agent).
        detailed: Print every problem's verdict as it finishes.
        open_engines: Opens the run's engine(s) just before generation.

    Returns:
        0, or 1 when some problems failed (retry with ``--resume``).
    """
    from rich.console import Console

    from evaluation.progress import summary_table
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
                    errors = _generate(plan, store, done, detailed, open_engines)
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
    Console().print(summary_table(plan.settings, summary, str(plan.run_dir)))
    for error in errors:
        print(f"warning: generation failed ({error}); rerun with --resume {plan.run_dir}",
              file=sys.stderr)  # fmt: skip
    return 1 if summary.num_failed else 0


def resolve_profile(args: argparse.Namespace) -> dict | None:
    """The ``--profile`` to apply, as ``build_plan`` takes it, or ``None``.

    Raises:
        ProfileError: no profile for the model on this machine, or one for another model.
    """
    if not getattr(args, "profile", None):
        return None
    from tuner.hardware import fingerprint, hardware_id
    from tuner.profiles import ProfileError, check_compatible, find_profile, load_profile

    hardware = fingerprint()
    path = args.profile
    if path == "auto":
        if not args.model:
            raise ProfileError("--profile auto needs --model to find the model's profile")
        path = find_profile(args.model, hardware_id(hardware))
        if path is None:
            raise ProfileError(
                f"no profile for {args.model} on this machine ({hardware_id(hardware)});"
                " run `infertune tune` first"
            )
    profile = load_profile(path)
    if args.model and profile.model != args.model:
        raise ProfileError(f"profile {path} is for model {profile.model}, not {args.model}")
    for warning in check_compatible(profile, hardware):
        print(f"warning: {warning}", file=sys.stderr)
    backend = profile.config.backend
    if args.inference_backend not in (None, backend):  # other backend: its knobs do not apply
        return {"backend": backend, "engine": {}, "path": str(path), "ignored": True}
    return {"backend": backend, "engine": dict(profile.config.settings), "path": str(path),
            "hardware_id": profile.hardware_id, "created": profile.created}  # fmt: skip


def _resumes_agent_run(args: argparse.Namespace) -> bool:
    if not args.resume:
        return False
    from evaluation.results import load_settings

    return bool(load_settings(Path(args.resume)).get("agent"))


def _generate(
    plan: RunPlan, store: RecordStore, done: int, detailed: bool, open_engines: EngineOpener
) -> tuple[str, ...]:
    from evaluation.progress import RunProgress
    from evaluation.results import save_settings
    from evaluation.runner import run_problems

    with ExitStack() as stack:
        engine = open_engines(plan, store, stack)
        if hasattr(engine, "settings"):  # the resolved settings, defaults included
            plan.settings["engine"] = plan.settings["sessions"][-1]["engine"] = engine.settings()
        save_settings(plan.run_dir, plan.settings)
        with RunProgress(len(plan.problems), done, detailed=detailed) as progress:
            outcome = run_problems(
                engine, plan.mode, plan.problems, store,
                first_index=plan.settings["start"], chunk_size=plan.chunk_size,
                on_batch=progress.on_batch,
            )  # fmt: skip
    return outcome.errors


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evaluation.eval``: exit 0, 1 (some problems failed), 2 (bad input), 130."""
    return run_cli(argv, prog="python -m evaluation.eval", description=__doc__, run=run)


def run_cli(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str | None,
    run: Callable[[argparse.Namespace], int],
) -> int:
    """Parse the eval flags, call ``run`` and map errors to one-line messages and exit codes."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_reporting_errors(lambda: run(args), parser.prog)


if __name__ == "__main__":
    sys.exit(main())

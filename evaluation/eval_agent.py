"""``python -m evaluation.eval_agent --agent NAME ...`` (also ``infertune eval --agent NAME``).

Example::

    python -m evaluation.eval_agent --agent majority_vote --num_runs 5 --temperature 0.7 \\
        --model Qwen/Qwen2.5-Math-1.5B --dataset gsm8k --count 100 --inference_backend vllm

The flags, results folder, resume and progress are those of ``python -m
evaluation.eval``; the run's ``mode`` is the agent's name.  The agent runs over
every problem of the run at once: each step is one engine call per role.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from engines.errors import ConfigError
from evaluation.errors import ResultsError

# majority_vote samples; greedy would give k identical answers
SAMPLING_DEFAULTS = {"majority_vote": {"temperature": 0.7, "top_p": 0.95, "seed": 0}}
# agent flags named like the agents' fields; a resume takes the folder's values for those not given
AGENT_FLAGS = ("num_runs", "max_iterations", "checker_model", "max_subproblems")


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """The agent flags (``infertune eval`` gets them too)."""
    add = parser.add_argument
    add("--agent", help="run an agent instead of standard mode: majority_vote, solver_checker,"
        " solver_checker_chat, solver_checker_summarizer, plan_and_reflect, python_tools,"
        " solver_checker_with_tools")  # fmt: skip
    add("--num_runs", type=int, help="majority_vote: samples per problem, k (default: 5)")
    add(
        "--max_iterations",
        type=int,
        help="solver/checker attempts (default: 3), plan-reflect rounds or tool runs (default: 2)",
    )
    add("--checker_model", help="solver_checker*: a separate model for the checker role")
    add("--max_subproblems", type=int, help="plan_and_reflect: sub-problems per plan (default: 3)")
    add("--sandbox_timeout", type=float, help="python_tools: wall seconds per snippet (default: 5)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from evaluation.eval import add_arguments as add_eval_arguments

    add_eval_arguments(parser)  # which includes add_agent_arguments


def build_agent(name: str, args: argparse.Namespace, prompt: object, stored: dict | None):  # noqa: ANN201
    """The agent ``name`` from flags, then the resumed folder's settings, then defaults."""
    from evaluation.agents import make_agent
    from evaluation.sandbox import SandboxLimits

    saved = dict((stored or {}).get("agent") or {})
    values = {flag: getattr(args, flag, None) for flag in AGENT_FLAGS}
    values = {k: v if v is not None else saved.get(k) for k, v in values.items()}
    wall = getattr(args, "sandbox_timeout", None) or saved.get("sandbox_wall_seconds")
    if wall is not None:
        if wall <= 0:
            raise ConfigError(f"--sandbox_timeout must be > 0, got {wall}")
        values["limits"] = SandboxLimits(wall_seconds=wall, cpu_seconds=max(1, math.ceil(wall)))
    return make_agent(name, prompt=prompt, **values)


def build_agent_plan(args: argparse.Namespace):  # noqa: ANN201 - an evaluation.plan.RunPlan
    """Check the arguments and plan an agent run (as ``build_plan`` does for standard mode)."""
    from evaluation import plan as base
    from evaluation.agents import AgentMode, agent_class
    from evaluation.results import load_settings

    stored = load_settings(Path(args.resume)) if args.resume else None
    name = args.agent or ((stored or {}).get("agent") or {}).get("name")
    if name is None:
        raise ConfigError("--agent is required (unless --resume names an agent run)")
    agent_class(name)  # a typo fails before anything else
    if stored and stored.get("mode") != name:
        raise ResultsError(f"--resume folder is a {stored.get('mode')!r} run, not {name!r}")
    sampling = argparse.Namespace(**vars(args))
    if stored is None:
        for flag, value in SAMPLING_DEFAULTS.get(name, {}).items():
            if getattr(sampling, flag) is None:
                setattr(sampling, flag, value)
    prompt = base.prompt_settings(sampling, stored["prompt"] if stored else None)
    agent = build_agent(name, args, prompt, stored)
    mode = AgentMode(agent=agent)
    return _plan(args, stored, name, mode)


def _plan(args: argparse.Namespace, stored: dict | None, name: str, mode: object):  # noqa: ANN202
    from evaluation.eval import resolve_profile
    from evaluation.plan import plan_for_mode

    plan = plan_for_mode(args, stored, name, mode, resolve_profile(args))
    # States are persisted after every step, so a crash loses one step, not a chunk; and
    # one chunk keeps a run at R engine calls rather than R per chunk.
    return dataclasses.replace(plan, chunk_size=None)


def run(args: argparse.Namespace) -> int:
    """Run one agent evaluation; 0, or 1 when some problems failed (retry with --resume)."""
    from evaluation.eval import execute

    return execute(build_agent_plan(args), detailed=args.detailed, open_engines=open_engines)


def open_engines(plan, store, stack: ExitStack):  # noqa: ANN001, ANN201 - see eval.EngineOpener
    """The main engine, plus the checker's when ``--checker_model`` names another model.

    Also hands the agent the record store, so that its states are saved after every step.
    """
    from engines import load_engine

    plan.mode.store = store
    model = plan.settings["model"]
    checker_model = plan.settings["agent"].get("checker_model")
    engine = stack.enter_context(load_engine(plan.backend, model, **plan.engine_settings))
    if checker_model and checker_model != model:
        checker = load_engine(plan.backend, checker_model, **plan.engine_settings)
        plan.mode.role_engines = {"checker": stack.enter_context(checker)}
    return engine


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evaluation.eval_agent``: the exit codes of ``python -m evaluation.eval``."""
    from evaluation.eval import run_cli

    return run_cli(argv, prog="python -m evaluation.eval_agent", description=__doc__, run=run)


if __name__ == "__main__":
    sys.exit(main())

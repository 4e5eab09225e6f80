"""``infertune eval`` (also ``python -m evaluation.eval``): evaluate a model on a dataset.

Example::

    infertune eval --model Qwen/Qwen2.5-Math-1.5B --round r1 --dataset gsm8k \\
        --count 100 --mode standard --batch-size 16 --backend transformers
    infertune eval ... --agent majority_vote --num-runs 5 --temperature 0.7

Parse, resolve ``--profile``, call :func:`evaluation.eval.run_evaluation`, print the
summary.  Exit codes: 0, 1 when some problems failed (rerun with ``--resume``), 2 on
bad input (before the model loads), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from commands import flags
from commands.flags import option
from engines.errors import ConfigError
from evaluation.prompts import PromptSettings
from evaluation.request import EvalRequest, ProfileSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags users know from the old system (both spellings), plus a few new ones."""
    _add_run_arguments(parser)
    _add_engine_arguments(parser)
    _add_prompt_arguments(parser)
    _add_agent_arguments(parser)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_model(parser, required=False)
    option(
        parser, "round", help="run label, the first part of the results folder name (default: run)"
    )
    flags.add_dataset(parser, required=False)
    flags.add_count(parser, default=None, help="number of problems, 0 = all (default: 0)")
    option(parser, "start", type=int, help="index of the first problem (default: 0)")
    option(parser, "mode", help="standard (default) or an agent's name (see --agent)")
    option(parser, "resume", metavar="DIR", help="continue the run in this results folder")
    flags.add_data_dir(parser)
    flags.add_results_dir(
        parser, default="results", help="where run folders go (default: ./results)"
    )
    option(
        parser, "detailed", action="store_true", help="print every problem's verdict as it finishes"
    )


def _add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_backend(
        parser,
        help="engine backend (default: transformers)",
        aliases=("--inference_backend", "--inference-backend"),
    )
    option(
        parser,
        "batch_size",
        type=_batch_size,
        metavar="N|auto",
        help="requests decoded together (the backend's batch setting, e.g. vLLM's max_num_seqs);"
        " auto: this machine's profile's batch for the run, else the probe's confirmed maximum",
    )
    flags.add_dtype(parser)
    option(
        parser,
        "engine_arg",
        action="append",
        metavar="KEY=VALUE",
        help="extra engine setting, repeatable (e.g. enforce_eager=true)",
    )
    option(
        parser,
        "profile",
        metavar="auto|PATH",
        help="apply a tuned profile (backend, batch, engine knobs); flags win",
    )


def _add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    # None: a resumed run keeps its own; a new one gets the prompt settings' default
    flags.add_max_new_tokens(parser, default=None, shown=PromptSettings().max_new_tokens)
    flags.add_prompt(parser)
    option(parser, "temperature", type=float, help="0 = greedy (default)")
    option(parser, "top_p", type=float, help="nucleus sampling threshold (default: 1.0)")
    flags.add_seed(parser, default=None, help="sampling seed")


def _add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    # Names are not listed here: importing the agents (and their sandbox) just to build
    # --help would make every command depend on them; a wrong name fails with suggestions.
    option(
        parser,
        "agent",
        help="run an agent, i.e. the mode of that name (e.g. majority_vote,"
        " solver_checker, plan_and_reflect, python_tools)",
    )
    option(parser, "num_runs", type=int, help="majority_vote: samples per problem, k (default: 5)")
    option(
        parser,
        "max_iterations",
        type=int,
        help="solver/checker attempts (default: 3), plan-reflect rounds or tool runs (default: 2)",
    )
    option(parser, "checker_model", help="solver_checker*: a separate model for the checker role")
    option(
        parser,
        "max_subproblems",
        type=int,
        help="plan_and_reflect: sub-problems per plan (default: 3)",
    )
    option(
        parser,
        "sandbox_timeout",
        type=float,
        help="python_tools: wall seconds per snippet (default: 5)",
    )


def _batch_size(text: str) -> int | str:
    """argparse type of ``--batch-size``: a whole number, or ``auto``."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a whole number or auto, got {text!r}") from None


def parse_engine_args(pairs: Sequence[str] | None) -> dict[str, object]:
    """``["enforce_eager=true", "max_num_seqs=64"]`` -> typed settings (plain YAML values)."""
    from common.limits import load_plain_value

    settings: dict[str, object] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--engine-arg wants KEY=VALUE, got {pair!r}")
        what = f"--engine-arg {key.strip()}"
        settings[key.strip()] = load_plain_value(value, what=what) if value.strip() else None
    return settings


def request_from_args(args: argparse.Namespace) -> EvalRequest:
    """The typed request for ``args``, with ``--profile`` resolved to plain settings."""
    if args.agent and args.mode and args.agent != args.mode:
        raise ConfigError(f"--agent {args.agent} and --mode {args.mode} disagree; give one")
    prompt = flags.prompt_options(args)
    fields = {
        name: getattr(args, name)
        for name in EvalRequest.__dataclass_fields__
        if name
        not in (
            "engine_args",
            "profile",
            "mode",
            "apply_chat_template",
            "stop",
            "batch_size_source",
        )
    }
    request = EvalRequest(
        **fields | {"batch_size": None if args.batch_size == "auto" else args.batch_size},
        apply_chat_template=prompt["chat_template"],
        stop=prompt["stop"],
        mode=args.agent or args.mode,
        engine_args=parse_engine_args(args.engine_arg),
        profile=_profile_settings(args.profile, args.model),
    )
    return auto_batch_size(request) if args.batch_size == "auto" else request


def _profile_settings(spec: str | None, model: str | None) -> ProfileSettings | None:
    if not spec:
        return None
    from tuner.profiles import eval_settings, resolve_profile

    resolved = resolve_profile(spec, model)
    for warning in resolved.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if resolved.profile is None:  # --profile none
        return None
    return eval_settings(resolved.profile, resolved.path)


def auto_batch_size(request: EvalRequest) -> EvalRequest:
    """``--batch-size auto``: the batch of this machine's valid profile for the run, else
    the probe's confirmed maximum (a quick probe of the model on the run's dataset)."""
    from commands.profile_choice import auto_batch

    return auto_batch(request)


def run(args: argparse.Namespace) -> int:
    """Run one evaluation and print its summary; 0, or 1 when some problems failed."""
    from rich.console import Console

    from evaluation.eval import execute
    from evaluation.plan import build_plan
    from evaluation.progress import summary_table

    request = request_from_args(args)
    plan = build_plan(request)
    for warning in plan.warnings:  # before the run, which may take hours
        print(f"warning: {warning}", file=sys.stderr)
    result = execute(plan, detailed=request.detailed)
    Console().print(summary_table(result.settings, result.summary, str(result.run_dir)))
    for error in result.errors:
        print(
            f"warning: generation failed ({error}); rerun with --resume {result.run_dir}",
            file=sys.stderr,
        )
    return result.exit_code


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m evaluation.eval") -> int:
    """The eval command alone (``python -m evaluation.eval``), with the global flags."""
    from commands.main import run_standalone

    return run_standalone("eval", argv, prog=prog)

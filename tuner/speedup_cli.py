"""``infertune speedup``: measure the speedup table on this machine.

Example::

    infertune speedup --model synthetic:small --dataset gsm8k --count 64 --out results/speedup
    infertune speedup ... --configs baseline transformers-bs16 vllm-seqs32

Every configuration runs the same workload (same prompts, greedy decoding,
replayed output lengths for synthetic models) in its own subprocess with a
warm-up excluded from timing; see :mod:`tuner.speedup`.  Writes
``speedup.md``, ``speedup.csv``, ``speedup.json`` and ``speedup.png`` into
``--out`` and prints the table.  Exit codes: 0 with the files written, 1 when
the baseline did not finish (no speedup can be computed; the files are still
written), 2 on bad input (before anything runs).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from tuner.speedup import DEFAULT_NAMES, DEFAULT_TIME_LIMIT_S
from tuner.workload import DEFAULT_MAX_NEW_TOKENS, DEFAULT_SIZE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--model", required=True, help="model id or path (e.g. synthetic:small)")
    add("--dataset", required=True, help="dataset the workload is sampled from (gsm8k, ...)")
    add("--count", type=int, default=DEFAULT_SIZE, help=f"problems (default: {DEFAULT_SIZE})")
    add(
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        help=f"generation budget per problem (default: {DEFAULT_MAX_NEW_TOKENS})",
    )
    add("--seed", type=int, default=0, help="workload sampling seed (default: 0)")
    add(
        "--configs",
        nargs="+",
        default=list(DEFAULT_NAMES),
        metavar="NAME",
        help=f"configurations to measure (default: all of {', '.join(DEFAULT_NAMES)})",
    )
    add("--out", help="output folder (default: results/speedup/<model-slug>-<hardware-id>)")
    add(
        "--time-limit",
        type=float,
        default=DEFAULT_TIME_LIMIT_S,
        help=f"seconds per configuration, load included (default: {DEFAULT_TIME_LIMIT_S:g})",
    )
    add("--data-dir", help="folder with <dataset>/test.jsonl (default: $INFERTUNE_DATA_DIR, ...)")
    add("--profiles-dir", help="where to look for the tuned profile (default: profiles root)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from tuner.hardware import fingerprint, hardware_id
    from tuner.profiles import model_slug
    from tuner.speedup import run_speedup
    from tuner.speedup_report import SpeedupReport, rich_table, write_report

    _check(args)
    console = Console(stderr=True)
    hardware = fingerprint()
    configs, notes = _configs(args, hardware)
    out = Path(args.out or f"results/speedup/{model_slug(args.model)}-{hardware_id(hardware)}")
    _check_out(out)
    workload = _workload(args)  # loads the tokenizer: an unknown model fails here
    load_before = os.getloadavg()
    rows = run_speedup(workload, configs, time_limit_s=args.time_limit, log=console.print)
    report = SpeedupReport(
        model=args.model,
        dataset=args.dataset,
        workload=workload.describe(),
        hardware=hardware,
        hardware_id=hardware_id(hardware),
        rows=tuple(rows),
        notes=tuple(notes),
        load_before=load_before,
        load_after=os.getloadavg(),
        threads=os.environ.get("OMP_NUM_THREADS"),
    )
    paths = write_report(report, out)
    # Ten columns do not fit the 80 a console assumes when piped into a log.
    Console(width=None if sys.stdout.isatty() else 160).print(rich_table(report))
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"wrote {', '.join(str(p) for p in paths)}", markup=False)
    return 0 if rows[0].is_ok else 1


def _check(args: argparse.Namespace) -> None:
    from engines.errors import ConfigError

    for name, value in (("--count", args.count), ("--max-new-tokens", args.max_new_tokens)):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    if not args.time_limit > 0:
        raise ConfigError(f"--time-limit must be > 0 seconds, got {args.time_limit:g}")


def _check_out(out: Path) -> None:
    from engines.errors import ConfigError

    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"--out {out}: {existing} is a file, not a folder; choose another --out")
    if existing is not None and not os.access(existing, os.W_OK):
        raise ConfigError(f"--out {out}: {existing} is not writable; choose another --out")


def _configs(args: argparse.Namespace, hardware: Any) -> tuple[list[Any], list[str]]:
    from engines.vllm import is_available
    from tuner.speedup import TUNED, select_configs

    tuned, tuned_notes = _tuned_config(args, hardware) if TUNED in args.configs else (None, [])
    configs, notes = select_configs(
        args.configs,
        on_gpu=hardware.has_gpu,
        vllm_available=is_available(),
        tuned=tuned,
        tuned_missing=tuned_notes[0] if tuned is None and tuned_notes else "not requested",
    )
    return configs, notes + (tuned_notes if tuned is not None else [])


def _tuned_config(args: argparse.Namespace, hardware: Any) -> tuple[Any, list[str]]:
    """This machine's profile config and its version-drift warnings, or ``None`` and why."""
    from tuner.hardware import hardware_id
    from tuner.profiles import ProfileError, check_compatible, find_profile, load_profile

    here = hardware_id(hardware)
    path = find_profile(args.model, here, args.profiles_dir)
    if path is None:
        return None, [f"no tuned profile for {args.model} on {here} (run `infertune tune`)"]
    try:
        profile = load_profile(path)
        warnings = check_compatible(profile, hardware)
    except ProfileError as error:
        return None, [f"profile not usable: {error}"]
    return profile.config, [f"tuned: {path}"] + [f"tuned: {w}" for w in warnings]


def _workload(args: argparse.Namespace) -> Any:
    from tuner.workload import build_workload

    # Every problem is a canary: accuracy and agreement cover the whole workload.
    return build_workload(
        args.model,
        args.dataset,
        size=args.count,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
        num_canary=args.count,
        data_dir=args.data_dir,
    )

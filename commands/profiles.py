"""``infertune profiles list|show``: look at saved tuning profiles.

``list`` prints every profile under the profiles root (unreadable files too,
with the reason).  ``show`` prints one profile, given its path or a model id (the
profile for this machine's hardware id).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from commands import flags
from commands.flags import option

if TYPE_CHECKING:
    from tuner.profiles import Profile, ProfileMetrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="profiles_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list saved profiles")
    flags.add_profiles_dir(listing, aliases=("--root",))
    show = actions.add_parser("show", help="show one profile")
    show.add_argument("target", metavar="PATH|MODEL", help="a profile file, or a model id")
    flags.add_profiles_dir(show, aliases=("--root",))
    option(show, "json", action="store_true", help="print the profile as JSON")


def run(args: argparse.Namespace) -> int:
    return _show(args) if args.profiles_action == "show" else _list(args)


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from tuner.profiles import list_profiles, profiles_root

    root = profiles_root(args.profiles_dir)
    entries = list_profiles(root)
    console = Console()
    if not entries:
        console.print(f"no profiles under {root}")
        return 0
    table = Table(title=escape(f"profiles under {root}"))
    for column in ("model", "hardware id", "backend"):
        table.add_column(column)
    for column in ("batch", "problems/s", "speedup", "parity"):
        table.add_column(column, justify="right")
    table.add_column("created")
    unreadable = []
    for entry in entries:
        if entry.profile is None:
            unreadable.append(entry.error)
            continue
        p = entry.profile
        table.add_row(
            escape(p.model),
            p.hardware_id,
            p.config.backend,
            str(p.config.batch_size or "-"),
            f"{p.metrics.problems_per_s:.3g}",
            f"{p.metrics.speedup:.2f}x",
            f"{p.metrics.parity_agreement:.0%}",
            p.created[:10],
        )
    console.print(table)
    for error in unreadable:
        console.print(f"unreadable: {error}", style="red", markup=False, soft_wrap=True)
    return 0


def _resolve(target: str, root: str | None) -> Path:
    """A profile path from a file path or a model id (for this machine)."""
    from common.hardware import fingerprint, hardware_id
    from tuner.profiles import ProfileError, find_profile, model_slug, profiles_root

    if Path(target).is_file() or target.endswith(".json"):
        return Path(target)
    here = hardware_id(fingerprint())
    path = find_profile(target, here, root)
    if path is None:
        others = sorted(p.stem for p in (profiles_root(root) / model_slug(target)).glob("*.json"))
        elsewhere = f" (profiles exist for: {', '.join(others)})" if others else ""
        raise ProfileError(
            f"no profile for {target} on this machine ({here}) under {profiles_root(root)}"
            f"{elsewhere}; run `infertune tune --model {target}` or pass a profile path"
        )
    return path


def _show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from tuner.profiles import load_profile

    path = _resolve(args.target, args.profiles_dir)
    profile = load_profile(path)
    if args.json:
        print(json.dumps({"path": str(path), **profile.as_dict()}, indent=2))
        return 0
    m, c = profile.metrics, profile.config
    rows = {
        "file": str(path),
        "model": f"{profile.model} ({profile.model_revision or 'revision unknown'})",
        "hardware": f"{profile.hardware_id}: {profile.hardware.describe()}",
        "versions": ", ".join(f"{k} {v}" for k, v in asdict(profile.versions).items() if v),
        "backend": c.backend,
        "batch size": str(c.batch_size or "-"),
        "settings": ", ".join(f"{k}={v!r}" for k, v in c.settings.items()) or "-",
        "throughput": f"{m.problems_per_s:.4g} problems/s, {m.output_tokens_per_s:.4g} tokens/s",
        "baseline": f"{m.baseline_problems_per_s:.4g} problems/s",
        "speedup": f"{m.speedup:.2f}x",
        "tuned for": tuned_for(profile),
        "entries": entries_text(profile),
        "parity": f"{m.parity_agreement:.1%}",
        "peak memory": "-"
        if m.peak_memory_bytes is None
        else f"{m.peak_memory_bytes / 2**30:.2f} GiB",
        "workload": json.dumps(profile.workload) if profile.workload else "-",
        "study": "-"
        if profile.study is None
        else f"{profile.study.study_name} #{profile.study.trial_number} ({profile.study.storage})",
        "created": profile.created,
    }
    title = escape(f"profile {profile.model} on {profile.hardware_id}")
    table = Table(show_header=False, title=title)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, escape(value))
    Console().print(table)
    return 0


def entry_metrics(profile: Profile, mode: str | None = None) -> ProfileMetrics:
    """The metrics of ``mode``'s entry (default, or a mode not tuned: the profile's own)."""
    entry = profile.entry(mode or profile.mode)
    return entry.metrics if entry is not None else profile.metrics


def tuned_for(profile: Profile, mode: str | None = None) -> str:
    """The run the entry of ``mode`` (default: the profile's own) minimised the wall time of
    (absent before schema 2)."""
    mode = mode or profile.mode
    m = entry_metrics(profile, mode)
    if m.predicted_wall_s is None:
        return "-"
    startup = f"{m.load_s:.3g} s load + {m.warmup_s:.3g} s warm-up"
    run = f"{m.for_count} / {m.problems_per_s:.3g} problems/s"
    return f"{mode}, {m.for_count} problems: {startup} + {run} = {m.predicted_wall_s:.4g} s"


def entries_text(profile: Profile) -> str:
    """Each mode's winners per range of counts: ``standard: 1-44 batch 2, 45+ batch 8``."""
    parts = []
    for mode, entry in profile.entries().items():
        ranges = entry.by_count or ()
        shown = [f"{r.min_count}{'-' + str(r.max_count) if r.max_count else '+'}"
                 f" {r.config.backend} batch {r.config.batch_size}" for r in ranges]  # fmt: skip
        parts.append(f"{mode}: " + (", ".join(shown) or f"{entry.config.backend} batch"
                                    f" {entry.config.batch_size}"))  # fmt: skip
    return "; ".join(parts)

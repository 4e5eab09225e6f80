"""The end of ``infertune tune``: a table of every trial, the profile, the plots.

The profile records the fastest *feasible* trial (it finished and met the
parity threshold) with its speedup over the batch-size-1 reference; the table
shows every trial, with its parity agreement, because batching can change
answers and users must see it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from rich.console import Console
from rich.table import Table

from tuner.hardware import Hardware, hardware_id
from tuner.profiles import (
    Profile,
    ProfileConfig,
    ProfileMetrics,
    StudyRef,
    model_revision,
    save_profile,
)
from tuner.search import REFERENCE_ATTR
from tuner.workload import Workload

MAX_ROWS = 25


def finish(
    study: optuna.Study,
    rows: list[dict[str, Any]],
    workload: Workload,
    hardware: Hardware,
    *,
    storage: str,
    root: Path,
    console: Console,
) -> int:
    """Render the trials and save the best feasible one; 1 when none is feasible."""
    feasible = [r for r in rows if r["feasible"]]
    best = feasible[0] if feasible else None
    baseline = _baseline(study, best)
    console.print(trial_table(rows, baseline))
    if best is None or baseline is None:
        console.print(
            "[red]no feasible trial[/]: every configuration failed or changed answers;"
            " raise --n-trials, lower --parity-threshold, or check the messages above"
        )
        return 1
    profile = build_profile(best, baseline, workload, hardware, storage, study.study_name)
    path = save_profile(profile, root)
    from tuner.plots import save_plots

    plots, notes = save_plots(study, rows, path.with_suffix(""))
    console.print(
        f"best: trial {best['number']} ({best['backend']}, batch {best['batch_size']}),"
        f" {best['problems_per_s']:.3g} problems/s, {profile.metrics.speedup:.2f}x the"
        f" batch-1 reference"
    )
    console.print(f"profile: {path}")
    for plot in plots:
        console.print(f"plot: {plot}")
    for note in notes:
        console.print(f"note: {note}")
    return 0


def _baseline(study: optuna.Study, best: dict[str, Any] | None) -> float | None:
    dtypes = [best["settings"]["dtype"]] if best else []
    dtypes += [k.split("/", 1)[1] for k in study.user_attrs if k.startswith("reference/")]
    for dtype in dtypes:
        stored = study.user_attrs.get(REFERENCE_ATTR.format(dtype=dtype))
        if stored:
            return stored["problems_per_s"]
    return None


def build_profile(
    best: dict[str, Any],
    baseline: float,
    workload: Workload,
    hardware: Hardware,
    storage: str,
    study_name: str,
) -> Profile:
    """The profile of trial row ``best``; its settings pass straight to ``load_engine``."""
    config = ProfileConfig(
        backend=best["backend"], settings=dict(best["settings"]), batch_size=best["batch_size"]
    )
    metrics = ProfileMetrics(
        problems_per_s=best["problems_per_s"],
        output_tokens_per_s=best["output_tokens_per_s"],
        baseline_problems_per_s=baseline,
        speedup=best["problems_per_s"] / baseline,
        parity_agreement=best["agreement"],
        peak_memory_bytes=best.get("peak_memory_bytes"),
    )
    return Profile(
        model=workload.model,
        hardware=hardware,
        hardware_id=hardware_id(hardware),
        config=config,
        metrics=metrics,
        workload=workload.describe(),
        model_revision=model_revision(workload.model),
        study=StudyRef(storage=storage, study_name=study_name, trial_number=best["number"]),
    )


def trial_table(rows: list[dict[str, Any]], baseline: float | None) -> Table:
    """Every trial, fastest first, with speedup over the reference and parity."""
    table = Table(title="Tuning trials (fastest first)")
    for column in (
        "#",
        "backend",
        "batch",
        "knobs",
        "problems/s",
        "tokens/s",
        "speedup",
        "parity",
        "peak MB",
        "result",
    ):
        table.add_column(
            column, justify="right" if column not in ("backend", "knobs", "result") else "left"
        )
    for row in rows[:MAX_ROWS]:
        value = row.get("problems_per_s") or 0.0
        speedup = f"{value / baseline:.2f}x" if baseline and value else "-"
        peak = row.get("peak_memory_bytes")
        table.add_row(
            str(row["number"]),
            row.get("backend", "?"),
            str(row.get("batch_size", "-")),
            _knobs(row.get("settings") or {}),
            f"{value:.3g}",
            f"{row.get('output_tokens_per_s') or 0.0:.4g}",
            speedup,
            f"{row['agreement']:.0%}" if "agreement" in row else "-",
            f"{peak / 2**20:.0f}" if peak else "-",
            _result(row),
        )
    if len(rows) > MAX_ROWS:
        table.caption = f"{len(rows) - MAX_ROWS} slower trials not shown"
    return table


_SHORT = {
    "stopping": "{}",
    "sort_by_length": "sorted={}",
    "attn_implementation": "{}",
    "dtype": "{}",
    "max_num_batched_tokens": "tokens={}",
    "enable_prefix_caching": "prefix={}",
    "enforce_eager": "eager={}",
    "tensor_parallel_size": "tp={}",
    "max_batch_tokens": "tokens={}",
}
_HIDDEN = {"batch_size", "max_num_seqs", "max_requests_per_batch", "num_blocks", "page_size"}


def _knobs(settings: dict[str, Any]) -> str:
    return " ".join(
        _SHORT.get(k, k + "={}").format(v) for k, v in settings.items() if k not in _HIDDEN
    )


def _result(row: dict[str, Any]) -> str:
    if row["state"] == "PRUNED":
        return "pruned"
    if row.get("status") not in (None, "ok"):
        return f"{row['status']}: {row.get('message', '')[:60]}"
    if "duplicate_of" in row:
        return f"ok (same as #{row['duplicate_of']})"
    return "ok" if row["feasible"] else "parity below threshold"

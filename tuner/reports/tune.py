"""The end of a tuning run: a table of every trial, and the profile of the best one.

The profile records the fastest *feasible* trial (it finished and gave the
same answers as the reference, :mod:`tuner.answer_parity`) with its speedup over
the batch-size-1 reference; the table shows every trial, with its agreement and,
for a model that answers, its flips and McNemar p, because batching can change
answers and users must see it.
"""

from __future__ import annotations

from typing import Any

import optuna
from rich.table import Table

from common.hardware import Hardware, hardware_id
from engines.registry import backend_names, batch_field
from tuner.measurement.workload import Workload
from tuner.profiles import (
    Profile,
    ProfileConfig,
    ProfileMetrics,
    StudyRef,
    model_revision,
)
from tuner.search.reference import references
from tuner.search.trials import PARITY_ATTRS, TrialRow

MAX_ROWS = 25


def baseline_of(study: optuna.Study, best: TrialRow | None) -> float | None:
    """Problems/s of the batch-1 reference: of the best trial's dtype, else of any."""
    stored = references(study)
    dtypes = [best.settings.get("dtype")] if best else []
    for dtype in [*dtypes, *stored]:
        if dtype in stored:
            return stored[dtype].problems_per_s
    return None


def build_profile(
    best: TrialRow,
    baseline: float,
    workload: Workload,
    hardware: Hardware,
    storage: str,
    study_name: str,
) -> Profile:
    """The profile of trial row ``best``; its settings pass straight to ``load_engine``."""
    config = ProfileConfig(
        backend=best.backend, settings=dict(best.settings), batch_size=best.batch_size
    )
    metrics = ProfileMetrics(
        problems_per_s=best.problems_per_s,
        output_tokens_per_s=best.output_tokens_per_s,
        baseline_problems_per_s=baseline,
        speedup=best.problems_per_s / baseline,
        parity_agreement=best.agreement,
        peak_memory_bytes=best.peak_memory_bytes,
        # trials recorded before the paired test have no report
        parity=None if best.is_answering is None else {n: getattr(best, n) for n in PARITY_ATTRS},
    )
    return Profile(
        model=workload.model,
        hardware=hardware,
        hardware_id=hardware_id(hardware),
        config=config,
        metrics=metrics,
        workload=workload.describe(),
        model_revision=model_revision(workload.model),
        study=StudyRef(storage=storage, study_name=study_name, trial_number=best.number),
    )


def trial_table(rows: list[TrialRow], baseline: float | None) -> Table:
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
        value = row.problems_per_s
        speedup = f"{value / baseline:.2f}x" if baseline and value else "-"
        peak = row.peak_memory_bytes
        table.add_row(
            str(row.number),
            row.backend or "?",
            str(row.batch_size or "-"),
            _knobs(row.settings),
            f"{value:.3g}",
            f"{row.output_tokens_per_s:.4g}",
            speedup,
            _parity(row),
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
# shown in their own column (the batch settings) or derived from it (the CB cache size)
_HIDDEN = {*(batch_field(b) for b in backend_names()), "num_blocks", "page_size"}


def _knobs(settings: dict[str, Any]) -> str:
    return " ".join(
        _SHORT.get(k, k + "={}").format(v) for k, v in settings.items() if k not in _HIDDEN
    )


def _parity(row: TrialRow) -> str:
    """Agreement, and for a model that answers the flips (right->wrong/wrong->right) and p."""
    if row.agreement is None:
        return "-"
    if not row.is_answering:
        return f"{row.agreement:.0%}"
    return f"{row.agreement:.0%} {row.right_to_wrong}/{row.wrong_to_right} p={row.p_value:.2g}"


def _result(row: TrialRow) -> str:
    if row.status == "skipped":  # not started: it could not finish in the budget left
        return row.message[:70]
    if row.state == "PRUNED":
        return "pruned"
    if row.status not in (None, "ok"):
        return f"{row.status}: {row.message[:60]}"
    if row.duplicate_of is not None:
        return f"ok (same as #{row.duplicate_of})"
    return "ok" if row.is_feasible else "answers changed (parity)"

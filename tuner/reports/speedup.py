"""The speedup table as files: ``speedup.md``, ``.csv``, ``.json`` and ``.png``, and as rich.

A :class:`SpeedupReport` carries its environment (hardware fingerprint,
library versions, workload, load averages before and after) next to the rows,
so a table read months later still says where and how it was measured.  Every
file is written to a temporary name and moved into place (``os.replace``): an
interrupted run leaves the previous files whole.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.hardware import GIB, Hardware
from common.io import write_atomic
from tuner.answer_parity import DEFAULT_THRESHOLD
from tuner.measurement.speedup import SpeedupRow, best_row

SCHEMA_VERSION = 1
KIND = "infertune.speedup"
FILES = ("speedup.md", "speedup.csv", "speedup.json", "speedup.png")
NA = "n/a"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeedupReport:
    """Rows of the speedup table and everything needed to interpret them."""

    model: str
    dataset: str
    workload: dict[str, Any]
    hardware: Hardware
    hardware_id: str
    rows: tuple[SpeedupRow, ...]
    notes: tuple[str, ...] = ()
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None
    threads: str | None = None
    parity_threshold: float = DEFAULT_THRESHOLD
    created: str = field(default_factory=_now)
    files: tuple[Path, ...] = ()  # where write_report put it (not part of the report itself)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "schema_version": SCHEMA_VERSION,
            "created": self.created,
            "model": self.model,
            "dataset": self.dataset,
            "workload": self.workload,
            "hardware_id": self.hardware_id,
            "hardware": self.hardware.as_dict(),
            "load_average_before": self.load_before,
            "load_average_after": self.load_after,
            "omp_num_threads": self.threads,
            "parity_threshold": self.parity_threshold,
            "rows": [row.as_dict() for row in self.rows],
            "notes": list(self.notes),
        }


def _flips(row: SpeedupRow) -> str:
    if row.right_to_wrong is None or row.wrong_to_right is None:
        return NA  # not measured, or a random-weight model: tokens decide
    return f"{row.right_to_wrong}/{row.wrong_to_right}"


# column title -> how a row shows in it
COLUMNS: dict[str, Callable[[SpeedupRow], str]] = {
    "configuration": lambda r: r.name,
    "wall time": lambda r: _fmt(r.seconds, "{:.1f} s") if r.is_ok else r.status,
    # start of the configuration's subprocess to engine ready: what each run pays once
    "load": lambda r: _fmt(r.load_s, "{:.1f} s"),
    "problems/s": lambda r: _fmt(r.problems_per_s, "{:.3g}"),
    "output tokens/s": lambda r: _fmt(r.output_tokens_per_s, "{:.0f}"),
    "speedup": lambda r: _fmt(r.speedup, "{:.2f}x"),
    "peak memory": lambda r: _fmt(r.peak_memory_bytes and r.peak_memory_bytes / GIB, "{:.2f} GiB"),
    "GPU util": lambda r: _fmt(r.gpu_utilization_pct, "{:.0f}%"),
    "energy/problem": lambda r: _fmt(r.energy_per_problem_j, "{:.1f} J"),
    "accuracy": lambda r: _fmt(r.accuracy and r.accuracy * 100, "{:.1f}%"),
    "agreement": lambda r: _fmt(r.agreement and r.agreement * 100, "{:.0f}%"),
    "flips": _flips,
    "Δ accuracy": lambda r: _fmt(r.accuracy_delta and r.accuracy_delta * 100, "{:+.1f} pt"),
    "p": lambda r: _fmt(r.p_value, "{:.2g}"),
    "same answers": lambda r: (
        NA if r.is_acceptable is None else ("yes" if r.is_acceptable else "NO")
    ),
}


def _fmt(value: float | None, pattern: str) -> str:
    # Callers scale with ``x and x * k``, which keeps None (missing) apart from 0.
    return NA if value is None else pattern.format(value)


def table_cells(report: SpeedupReport) -> list[list[str]]:
    return [[show(row) for show in COLUMNS.values()] for row in report.rows]


def to_markdown(report: SpeedupReport) -> str:
    """The table with the hardware, library versions and workload above it."""
    versions = report.hardware.versions
    work = report.workload
    lines = [
        f"# Speedup over batch size 1: {report.model} on {report.dataset}",
        "",
        f"- measured: {report.created} with `infertune speedup`",
        f"- hardware: {report.hardware.describe()} (id `{report.hardware_id}`)",
        f"- driver: {report.hardware.driver_version or NA},"
        f" CUDA: {report.hardware.cuda_version or NA}",
        f"- versions: python {versions.python}, torch {versions.torch or NA},"
        f" transformers {versions.transformers or NA},"
        f" {versions.vllm_distribution or 'vllm'} {versions.vllm or NA}",
        f"- workload: {work.get('num_problems')} problems (seed {work.get('seed')}),"
        f" {work.get('decoding')} decoding, max_new_tokens {work.get('max_new_tokens')},"
        f" replayed output lengths: {work.get('replayed_output_lengths')}"
        f" (mean {_fmt(work.get('mean_output_tokens'), '{:.1f}')} tokens)",
        f"- load average (1/5/15 min) before: {_load(report.load_before)},"
        f" after: {_load(report.load_after)}; OMP_NUM_THREADS: {report.threads or 'unset'}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_cells(report)]
    lines += ["", "Settings per configuration (as passed to the engine):", ""]
    lines += [f"- {row.name}: `{row.backend}` `{json.dumps(row.settings)}`" for row in report.rows]
    failures = [f"{r.name}: {r.status}: {r.message}" for r in report.rows if not r.is_ok]
    failures += parity_notes(report)
    if report.notes or failures:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in (*report.notes, *failures)]
    return "\n".join(lines) + "\n"


def parity_notes(report: SpeedupReport) -> list[str]:
    """What the parity columns mean, the fastest acceptable row, and each row that is not."""
    notes = [
        "wall time: the timed run, after an untimed warm-up; load: from the start of the"
        " configuration's process to its engine ready (paid once per run)",
        "accuracy: against the gold answers; agreement: same answers as the baseline (batch 1),"
        " or same tokens for a model that answers nothing; flips: right→wrong/wrong→right"
        " against the baseline; Δ accuracy and p: the change and McNemar's exact test",
        f"same answers: agreement at least {report.parity_threshold:.0%} and not"
        " significantly less accurate (the rule `infertune tune` applies)",
    ]
    best = best_row(report.rows)
    if best is not None:
        notes.append(
            f"fastest with the same answers: {best.name} ({_fmt(best.speedup, '{:.2f}x')})"
        )
    for row in (r for r in report.rows if r.is_acceptable is False):
        advice = "; re-tune" if row.name == "tuned" else ""
        notes.append(f"{row.name}: its answers differ from the baseline's{advice}")
    return notes


def _load(load: tuple[float, float, float] | None) -> str:
    return NA if load is None else " / ".join(f"{x:.2f}" for x in load)


def to_csv(report: SpeedupReport) -> str:
    """One line per configuration with raw (unformatted) values."""
    mappings = ("settings", "resolved_settings")  # JSON in one cell, at the end
    names = [n for n in SpeedupRow.__dataclass_fields__ if n not in mappings] + list(mappings)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow(row.as_dict() | {n: json.dumps(getattr(row, n)) for n in mappings})
    return buffer.getvalue()


def rich_table(report: SpeedupReport) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"speedup over batch size 1: {report.model} on {report.dataset}"))
    names = max([len("configuration"), *(len(r.name) for r in report.rows)])
    table.add_column("configuration", min_width=names)  # a cut name identifies nothing
    for title in list(COLUMNS)[1:]:
        table.add_column(title, justify="right")
    for row, cells in zip(report.rows, table_cells(report), strict=True):
        table.add_row(*map(escape, cells), style="red" if row.is_acceptable is False else "")
    notes = parity_notes(report)
    table.caption = escape("\n".join(notes)) if notes else None
    return table


def plot(report: SpeedupReport, handle: Any) -> None:
    """Bars of speedup per configuration, and output tokens/s against batch size."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    import matplotlib.pyplot as plt

    measured = [r for r in report.rows if r.is_ok]
    figure, (bars, lines) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = [r.name for r in measured]
    speedups = [r.speedup or 0.0 for r in measured]
    drawn = bars.bar(names, speedups, color=[_bar_colour(r) for r in measured])
    bars.bar_label(drawn, labels=[f"{s:.2f}x" for s in speedups])
    bars.axhline(1.0, color="black", linewidth=0.8)
    bars.set_ylabel("speedup over batch size 1 (problems/s)")
    bars.tick_params(axis="x", labelrotation=30)
    for backend in sorted({r.backend for r in measured if r.batch_size}):
        points = sorted(
            (r.batch_size, r.output_tokens_per_s)
            for r in measured
            if r.backend == backend and r.batch_size and r.name != "tuned"
        )
        if points:
            lines.plot(*zip(*points, strict=True), marker="o", label=backend)
    for row in (r for r in measured if r.name == "tuned" and r.batch_size):
        lines.scatter([row.batch_size], [row.output_tokens_per_s], marker="*", s=160,
                      color="crimson", zorder=3, label=f"tuned ({row.backend})")  # fmt: skip
    lines.set_xscale("log", base=2)
    lines.set_xlabel("batch size (max_num_seqs for vLLM)")
    lines.set_ylabel("output tokens/s")
    lines.legend()
    figure.suptitle(f"{report.model} on {report.dataset}: {report.hardware.describe()}", fontsize=9)
    figure.tight_layout()
    figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)


def write_report(report: SpeedupReport, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the four files into ``out_dir`` (created if needed), each atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    renderers: dict[str, Callable[[], str | bytes]] = {
        "speedup.md": lambda: to_markdown(report).encode(),
        "speedup.csv": lambda: to_csv(report).encode(),
        "speedup.json": lambda: json.dumps(report.as_dict(), indent=2).encode() + b"\n",
        "speedup.png": lambda: _png(report),
    }
    return [write_atomic(out / name, render()) for name, render in renderers.items()]


def _bar_colour(row: SpeedupRow) -> str:
    # red: faster, but its answers differ from the baseline's
    if row.is_acceptable is False:
        return "#c44"
    return "#888" if row.name == "baseline" else "#3a7"


def _png(report: SpeedupReport) -> bytes:
    buffer = io.BytesIO()
    plot(report, buffer)
    return buffer.getvalue()

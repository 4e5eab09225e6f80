"""The table across the grid: rich on the terminal, markdown, CSV and a plot on disk.

Numbers come from each job's own results (its answers file's ``summary``, which
the eval CLI recomputes from the record file), and the wall time and profile
from the manifest, so the summary is the same whether it is written by the run
that did the work or by a later one that found everything done.

Given a *baseline* (the results root of the same grid run without profiles,
e.g. at batch size 1), each job is compared with the baseline's job of the same
id by the rule tune and speedup use (:func:`tuner.answer_parity.compare_runs`):
agreement of extracted answers, the flips (right to wrong, wrong to right), the
accuracy delta and McNemar's p, and whether the answers count as the same.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.io import write_atomic
from engines.errors import ConfigError
from tuner.answer_parity import DEFAULT_THRESHOLD, compare_runs

COLUMNS = ("model", "dataset", "count", "mode", "state", "accuracy", "num_correct", "num_done",
           "num_problems", "problems_per_s", "tokens_per_s", "wall_s", "attempts", "profile",
           "folder", "error", "agreement", "right_to_wrong", "wrong_to_right", "accuracy_delta",
           "p_value", "is_answering", "is_acceptable")  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One cell of the grid."""

    model: str
    dataset: str
    count: int
    mode: str
    state: str
    accuracy: float | None
    num_correct: int | None
    num_done: int | None
    num_problems: int | None
    problems_per_s: float | None
    tokens_per_s: float | None
    wall_s: float
    attempts: int
    profile: str
    folder: str | None
    error: str | None
    # against the baseline's run of the same job (None without one)
    agreement: float | None = None
    right_to_wrong: int | None = None
    wrong_to_right: int | None = None
    accuracy_delta: float | None = None
    p_value: float | None = None
    is_answering: bool | None = None
    is_acceptable: bool | None = None


def build_rows(
    root: Path, entries: list[dict[str, Any]], baseline: Path | None = None
) -> list[Row]:
    """One row per evaluation job, from its manifest entry and its results folder,
    compared with the job of the same id under the ``baseline`` results root if given.

    Raises:
        ConfigError: ``baseline`` holds no readable sweep manifest.
    """
    references = _baseline_runs(baseline) if baseline is not None else {}
    rows = []
    for entry in entries:
        run = _run_answers(root / entry["folder"]) if entry.get("folder") else {}
        stats = run.get("summary") or {}
        report = compare_runs(run.get("problems") or [], references.get(entry.get("id"), []))
        parity = {} if report is None else report.row_fields(DEFAULT_THRESHOLD)
        rows.append(Row(
            model=entry["model"], dataset=entry["dataset"], count=entry["count"],
            mode=entry["mode"], state=entry["state"], accuracy=stats.get("accuracy"),
            num_correct=stats.get("num_correct"), num_done=stats.get("num_done"),
            num_problems=stats.get("num_problems"), problems_per_s=stats.get("problems_per_s"),
            tokens_per_s=stats.get("tokens_per_s"), wall_s=round(entry["wall_s"], 2),
            attempts=entry["attempts"], profile=_profile_name(entry.get("profile")),
            folder=entry.get("folder"), error=entry.get("error"), **parity,
        ))  # fmt: skip
    return rows


def _baseline_runs(baseline: Path) -> dict[str, list[dict[str, Any]]]:
    """The problem records of each finished job of the baseline sweep, by job id."""
    runs = {job_id: _run_answers(baseline / entry["folder"])
            for job_id, entry in baseline_jobs(baseline).items()
            if isinstance(entry, dict) and entry.get("folder")}  # fmt: skip
    return {job_id: run.get("problems") or [] for job_id, run in runs.items()}


def baseline_jobs(baseline: Path) -> dict[str, Any]:
    """The manifest entries of the baseline sweep at ``baseline`` (a results root).

    Raises:
        ConfigError: there is no readable sweep manifest there.
    """
    from tuner.sweep.manifest import MANIFEST_FILE

    path = baseline / MANIFEST_FILE
    try:  # read directly: the manifest class would take its lock and rewrite it
        return dict(json.loads(path.read_text(encoding="utf-8"))["jobs"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            f"--baseline {baseline}: no readable {MANIFEST_FILE} there;"
            " give the results root of a finished sweep"
        ) from None


def _run_answers(run_dir: Path) -> dict[str, Any]:
    """A run's answers file (``summary`` and ``problems``), or {} while there is none."""
    for path in sorted((run_dir / "answers").glob("*_answers.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}  # a half-written run: the manifest's state tells the story
        return data if isinstance(data, dict) else {}
    return {}


def _profile_name(path: str | None) -> str:
    """``profiles/qwen--qwen2.5-math-1.5b/h100-80g-x1-abc123.json`` -> ``qwen-.../h100-...``."""
    if not path:
        return "none"
    p = Path(path)
    return f"{p.parent.name}/{p.stem}"


def write_summary(root: Path, rows: list[Row]) -> list[Path]:
    """Write ``summary.csv``, ``summary.md`` and ``summary.png`` into ``root``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    write_atomic(root / "summary.csv", buffer.getvalue())
    write_atomic(root / "summary.md", markdown(rows))
    plot(rows, root / "summary.png")
    return [root / "summary.csv", root / "summary.md", root / "summary.png"]


def _cells(row: Row) -> list[str]:
    accuracy = "-" if row.accuracy is None else f"{100 * row.accuracy:.2f}%"
    done = "-" if row.num_done is None else f"{row.num_done}/{row.num_problems}"
    speed = "-" if row.problems_per_s is None else f"{row.problems_per_s:.3f}"
    return [row.model, f"{row.dataset} ({row.count or 'all'})", row.mode, row.state, accuracy,
            done, speed, f"{row.wall_s:.1f}", row.profile, *_parity_cells(row)]  # fmt: skip


def _parity_cells(row: Row) -> list[str]:
    """Agreement, flips (right->wrong/wrong->right), accuracy delta, p, same answers."""
    if row.agreement is None:
        return ["-"] * 5
    flips = "-" if row.right_to_wrong is None else f"{row.right_to_wrong}/{row.wrong_to_right}"
    delta = "-" if row.accuracy_delta is None else f"{100 * row.accuracy_delta:+.1f} pt"
    p = "-" if row.p_value is None else f"{row.p_value:.2g}"
    return [f"{100 * row.agreement:.0f}%", flips, delta, p, "yes" if row.is_acceptable else "NO"]


HEADERS = ["model", "dataset", "mode", "state", "accuracy", "done", "problems/s", "wall s",
           "profile", "agreement", "flips r→w/w→r", "accuracy delta", "McNemar p",
           "same answers"]  # fmt: skip


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in rows]
    failed = [r for r in rows if r.error]
    lines += ["", *[f"- {r.model} / {r.dataset} / {r.mode}: {r.error}" for r in failed]]
    return "\n".join(lines).rstrip() + "\n"


def rich_table(rows: list[Row], title: str):  # noqa: ANN201 - rich.table.Table
    from rich.table import Table

    table = Table(title=title)
    for header in HEADERS:
        table.add_column(header, justify="right" if header in ("accuracy", "problems/s",
                                                               "wall s") else "left")  # fmt: skip
    styles = {"done": "", "failed": "red", "pending": "yellow", "running": "yellow"}
    for row in rows:
        table.add_row(*_cells(row), style=styles.get(row.state, ""))
    return table


def plot(rows: list[Row], path: Path) -> None:
    """Accuracy vs throughput, one colour per model and one marker per mode."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    markers = "osD^v<>pP*X"
    models = sorted({r.model for r in rows})
    modes = sorted({r.mode for r in rows})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        if row.accuracy is None or row.problems_per_s is None:
            continue
        ax.scatter(row.problems_per_s, 100 * row.accuracy,
                   color=f"C{models.index(row.model) % 10}",
                   marker=markers[modes.index(row.mode) % len(markers)], s=60)  # fmt: skip
        ax.annotate(row.dataset, (row.problems_per_s, 100 * row.accuracy), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")  # fmt: skip
    for i, model in enumerate(models):
        ax.scatter([], [], color=f"C{i % 10}", marker="o", label=model)
    for i, mode in enumerate(modes):
        ax.scatter([], [], color="gray", marker=markers[i % len(markers)], label=mode)
    ax.set_xlabel("throughput (problems/s)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy vs throughput per model and mode")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    temp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(temp, dpi=120)
    plt.close(fig)
    temp.replace(path)

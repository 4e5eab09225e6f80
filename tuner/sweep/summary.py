"""The table across the grid: rich on the terminal, markdown, CSV and a plot on disk.

Numbers come from each job's own results (its answers file's ``summary``, which
the eval CLI recomputes from the record file), and the wall time and profile
from the manifest, so the summary is the same whether it is written by the run
that did the work or by a later one that found everything done.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.io import write_atomic

COLUMNS = ("model", "dataset", "count", "mode", "state", "accuracy", "num_correct", "num_done",
           "num_problems", "problems_per_s", "tokens_per_s", "wall_s", "attempts", "profile",
           "folder", "error")  # fmt: skip


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


def build_rows(root: Path, entries: list[dict[str, Any]]) -> list[Row]:
    """One row per evaluation job, from its manifest entry and its results folder."""
    rows = []
    for entry in entries:
        stats = _run_summary(root / entry["folder"]) if entry.get("folder") else {}
        rows.append(Row(
            model=entry["model"], dataset=entry["dataset"], count=entry["count"],
            mode=entry["mode"], state=entry["state"], accuracy=stats.get("accuracy"),
            num_correct=stats.get("num_correct"), num_done=stats.get("num_done"),
            num_problems=stats.get("num_problems"), problems_per_s=stats.get("problems_per_s"),
            tokens_per_s=stats.get("tokens_per_s"), wall_s=round(entry["wall_s"], 2),
            attempts=entry["attempts"], profile=_profile_name(entry.get("profile")),
            folder=entry.get("folder"), error=entry.get("error"),
        ))  # fmt: skip
    return rows


def _run_summary(run_dir: Path) -> dict[str, Any]:
    for path in sorted((run_dir / "answers").glob("*_answers.json")):
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("summary") or {}
        except (OSError, json.JSONDecodeError):
            return {}  # a half-written run: the manifest's state tells the story
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
            done, speed, f"{row.wall_s:.1f}", row.profile]  # fmt: skip


HEADERS = ["model", "dataset", "mode", "state", "accuracy", "done", "problems/s", "wall s",
           "profile"]  # fmt: skip


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

"""Files derived from the record file: answers JSON, log, metrics CSV and text.

Every aggregate is recomputed from the records each time, never carried as a
counter, so a resumed or repaired run reports exactly what its records say.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from common.io import write_atomic
from engines.registry import batch_field
from evaluation.records import done_problems
from evaluation.results import SCHEMA_VERSION, file_stem

CSV_COLUMNS = (
    "timestamp", "round", "model", "dataset", "mode", "backend", "batch_size", "start",
    "num_problems", "num_done", "num_correct", "accuracy", "num_failed", "generation_s",
    "overhead_s", "overhead_pct", "problems_per_s", "tokens_per_s", "prompt_tokens",
    "completion_tokens", "num_sessions", "hardware_id",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """Aggregates of one run, computed from its records."""

    num_problems: int
    num_done: int
    num_correct: int
    num_failed: int
    generation_s: float
    overhead_s: float
    prompt_tokens: int
    completion_tokens: int
    num_sessions: int

    @property
    def accuracy(self) -> float:
        return self.num_correct / self.num_done if self.num_done else 0.0

    @property
    def problems_per_s(self) -> float:
        return self.num_done / self.total_s if self.total_s else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.total_s if self.total_s else 0.0

    @property
    def total_s(self) -> float:
        return self.generation_s + self.overhead_s

    @property
    def overhead_pct(self) -> float:
        """Time spent prompting, grading and writing, as a share of engine time."""
        return 100 * self.overhead_s / self.generation_s if self.generation_s else 0.0

    def as_dict(self) -> dict[str, float | int]:
        derived = ("accuracy", "problems_per_s", "tokens_per_s", "total_s", "overhead_pct")
        values = asdict(self) | {name: getattr(self, name) for name in derived}
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in values.items()}


def summarize(records: list[dict], num_problems: int) -> Summary:
    """Aggregate ``records`` of a run planned for ``num_problems`` problems."""
    done = done_problems(records)
    failed = {i for r in records if r.get("kind") == "error" for i in r["ids"]} - done.keys()
    batches = [r for r in records if r.get("kind") == "batch"]
    return Summary(
        num_problems=num_problems,
        num_done=len(done),
        num_correct=sum(bool(r["correct"]) for r in done.values()),
        num_failed=len(failed),
        generation_s=sum(b["engine_s"] for b in batches),
        overhead_s=sum(b["overhead_s"] for b in batches),
        prompt_tokens=sum(r["prompt_tokens"] for r in done.values()),
        completion_tokens=sum(r["completion_tokens"] for r in done.values()),
        num_sessions=len({b["session"] for b in batches}),
    )


def ordered_problems(records: list[dict]) -> list[dict]:
    """Finished problems in dataset order, without the record-file bookkeeping."""
    done = sorted(done_problems(records).values(), key=lambda r: r["index"])
    return [{k: v for k, v in r.items() if k != "kind"} for r in done]


def write_reports(run_dir: Path, settings: dict, records: list[dict],
                  extra_metrics: Mapping[str, object] | None = None) -> Summary:  # fmt: skip
    """(Re)write every derived file of ``run_dir`` from ``records``; append one CSV row."""
    summary = summarize(records, len(settings["problem_ids"]))
    problems = ordered_problems(records)
    stem, mode = file_stem(settings), settings["mode"]
    answers = {
        "schema_version": SCHEMA_VERSION,
        "settings": settings,
        "summary": summary.as_dict(),
        "problems": problems,
    }
    write_atomic(run_dir / "answers" / f"{stem}_answers.json",
                 json.dumps(answers, indent=2, ensure_ascii=False))  # fmt: skip
    write_atomic(run_dir / "log" / f"{stem}.log", _log_text(problems, summary))
    write_atomic(run_dir / f"metrics_{mode}.txt", _metrics_text(settings, summary))
    row = _csv_row(settings, summary) | dict(extra_metrics or {})
    _append_csv_row(run_dir / "metrics.csv", row)
    return summary


def _log_text(problems: list[dict], summary: Summary) -> str:
    lines, correct = [], 0
    for position, p in enumerate(problems, start=1):
        correct += bool(p["correct"])
        lines += [
            f"===== [{position}/{summary.num_problems}] {p['id']} =====",
            f"Question: {p['question']}",
            "Response:",
            p["response"],
            f"Predicted: {p['predicted']} | Gold: {p['gold']} | Correct: {p['correct']}",
            f"Running accuracy: {correct}/{position} = {100 * correct / position:.2f}%",
            "",
        ]
    return "\n".join(lines)


def _metrics_text(settings: dict, s: Summary) -> str:
    return "\n".join([
        f"Model: {settings['model']}",
        f"Dataset: {settings['dataset']} (start {settings['start']}, {s.num_problems} problems)",
        f"Mode: {settings['mode']}",
        f"Backend: {settings['backend']}",
        f"Accuracy: {100 * s.accuracy:.2f}% ({s.num_correct}/{s.num_done})",
        f"Done: {s.num_done}/{s.num_problems} (failed, to retry with --resume: {s.num_failed})",
        f"Engine time: {s.generation_s:.2f} s; evaluation overhead: {s.overhead_s:.2f} s"
        f" ({s.overhead_pct:.2f}%)",
        f"Throughput: {s.problems_per_s:.3f} problems/s, {s.tokens_per_s:.1f} tokens/s",
        f"Tokens: {s.prompt_tokens} prompt, {s.completion_tokens} generated",
        "",
    ])  # fmt: skip


def _csv_row(settings: dict, s: Summary) -> dict[str, object]:
    stats = s.as_dict()
    engine = settings.get("engine", {})
    environment = settings.get("environment") or {}
    row = {
        "timestamp": dt.datetime.now().isoformat(timespec="seconds"),
        "round": settings.get("round"),
        "model": settings["model"],
        "dataset": settings["dataset"],
        "mode": settings["mode"],
        "backend": settings["backend"],
        "batch_size": engine.get(batch_field(settings["backend"])),
        "start": settings["start"],
        # joins the run to the profile of the machine it ran on
        "hardware_id": environment.get("hardware_id"),
    }
    return row | {c: stats[c] for c in CSV_COLUMNS if c in stats}


def _append_csv_row(path: Path, row: dict[str, object]) -> None:
    """Append ``row``, keeping every earlier row; new columns widen the header."""
    old_rows: list[dict[str, str]] = []
    columns = list(CSV_COLUMNS)
    if path.exists():
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns += [c for c in reader.fieldnames or () if c not in columns]
            old_rows = list(reader)
    columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows([*old_rows, row])
    write_atomic(path, buffer.getvalue())

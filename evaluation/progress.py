"""Live progress and the end-of-run summary, rendered with rich on stderr/stdout."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evaluation.reports import Summary


class RunProgress:
    """A progress bar of problems done, problems/s and generated tokens/s."""

    def __init__(self, total: int, completed: int, *, console: Console | None = None,
                 detailed: bool = False) -> None:  # fmt: skip
        self.console = console or Console(stderr=True)
        self.detailed = detailed
        self._started = time.perf_counter()
        self._num_problems = 0
        self._num_tokens = 0
        self._progress = Progress(
            TextColumn("[bold]eval"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self._task = self._progress.add_task("eval", total=total, completed=completed, rate="")

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self._progress.stop()

    def on_batch(self, records: list[dict]) -> None:
        """Advance by one persisted batch (the runner's ``on_batch`` hook)."""
        self._num_problems += len(records)
        self._num_tokens += sum(r["completion_tokens"] for r in records)
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        rate = (
            f"{self._num_problems / elapsed:.2f} problems/s  {self._num_tokens / elapsed:.1f} tok/s"
        )
        self._progress.update(self._task, advance=len(records), rate=rate)
        if self.detailed:
            for record in records:
                mark = "[green]correct" if record["correct"] else "[red]wrong"
                self._progress.console.print(
                    f"{record['id']}: predicted {record['predicted']!r}, gold {record['gold']!r}"
                    f" -> {mark}"
                )


def summary_table(settings: dict, summary: Summary, run_dir: str) -> Table:
    """The end-of-run table: accuracy, time and throughput."""
    table = Table(title=f"{settings['model']} on {settings['dataset']} ({settings['mode']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("accuracy", f"{100 * summary.accuracy:.2f}% ({summary.num_correct}/{summary.num_done})"),
        ("done", f"{summary.num_done}/{summary.num_problems}"),
        ("failed (retry with --resume)", str(summary.num_failed)),
        ("engine time", f"{summary.generation_s:.2f} s"),
        ("evaluation overhead", f"{summary.overhead_s:.2f} s ({summary.overhead_pct:.2f}%)"),
        ("problems/s", f"{summary.problems_per_s:.3f}"),
        ("generated tokens/s", f"{summary.tokens_per_s:.1f}"),
        ("results", run_dir),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table

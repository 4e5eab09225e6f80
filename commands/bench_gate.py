"""``infertune bench-gate``: fail CI when benchmark throughput dropped too far.

Exit codes: 0 when no benchmark's throughput dropped by more than ``--max-drop``,
1 on a regression, 2 on unusable input.  See :mod:`tuner.gates.throughput` for where the
throughput is read from.
"""

from __future__ import annotations

import argparse

from commands.flags import option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    option(parser, "baseline", required=True, help="pytest-benchmark JSON of the reference run")
    option(parser, "current", required=True, help="pytest-benchmark JSON of the run to check")
    option(
        parser,
        "max_drop",
        default="10%",
        help="largest allowed throughput drop, as 10%% or 0.1 (default: 10%%)",
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from tuner.gates.throughput import compare, parse_max_drop

    report = compare(args.baseline, args.current, parse_max_drop(args.max_drop))
    table = Table(title=escape(f"throughput: {args.current} vs {args.baseline}"))
    table.add_column("benchmark")
    table.add_column("metric")
    for column in ("baseline", "current", "change"):
        table.add_column(column, justify="right")
    table.add_column("status")
    for c in report.comparisons:
        status = (
            "[red]REGRESSION[/red]" if c.is_regression(report.max_drop) else "[green]ok[/green]"
        )
        table.add_row(
            escape(c.name),
            c.baseline.unit,
            f"{c.baseline.value:.4g}",
            f"{c.current.value:.4g}",
            f"{c.change:+.1%}",
            status,
        )
    console = Console()
    console.print(table)
    for label, names in (
        ("baseline", report.only_in_baseline),
        ("current", report.only_in_current),
    ):
        if names:
            console.print(f"only in {label} (not compared): {', '.join(names)}", markup=False)
    verdict = "passed" if report.passed else f"FAILED: {len(report.regressions)} regression(s)"
    console.print(f"gate {verdict} (max drop {report.max_drop:.1%})")
    return 0 if report.passed else 1

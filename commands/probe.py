"""``infertune probe``: how many sequences of the workload fit on this machine.

Prints the hardware, the measured memory model and the confirmed batch size as
a table, or as JSON with ``--json`` (the :class:`tuner.probe.ProbeResult`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from commands import flags
from commands.flags import option

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MIB = 1 << 20


def memory_size(text: str) -> int:
    """``"4096"``, ``"512M"``, ``"2.5G"`` -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not match:
        raise argparse.ArgumentTypeError(f"not a memory size: {text!r} (e.g. 8G, 512M, 1048576)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of ints: {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_model(parser)
    flags.add_dataset(parser, required=False, default="gsm8k")
    flags.add_data_dir(parser)
    flags.add_backend(parser, default="transformers", help="engine backend (default: transformers)")
    flags.add_dtype(parser, default="auto")
    option(parser, "safety_margin", type=float, default=0.1, help="fraction of memory kept free")
    option(
        parser,
        "memory_limit",
        type=memory_size,
        help="bytes for weights plus generation (e.g. 8G); enforced for the confirmation",
    )
    flags.add_count(
        parser,
        default=64,
        help="problems in the workload (default: 64)",
        aliases=("--num-problems", "--num_problems"),
    )
    flags.add_max_new_tokens(parser, default=256)
    flags.add_prompt(parser)
    option(
        parser,
        "batch_sizes",
        type=_batch_sizes,
        default=(1, 2, 4),
        help="sizes to measure, e.g. 2,4,8",
    )
    option(parser, "max_batch_size", type=int, help="cap (default: the workload size)")
    option(
        parser,
        "start_batch_size",
        type=int,
        help="confirm from this size instead of the prediction",
    )
    option(parser, "json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from tuner.api import probe

    result = probe(
        args.model,
        args.dataset,
        count=args.count,
        backend=args.backend,
        data_dir=args.data_dir,
        safety_margin=args.safety_margin,
        memory_limit=args.memory_limit,
        batch_sizes=args.batch_sizes,
        max_batch_size=args.max_batch_size,
        start_batch_size=args.start_batch_size,
        max_new_tokens=args.max_new_tokens,
        dtype=args.dtype,
        **flags.prompt_options(args),
        progress=lambda line: print(f"probe: {line}", file=sys.stderr, flush=True),
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        _render(result)
    return 0


def _mib(value: float) -> str:
    return f"{value / MIB:,.2f} MiB"


def _render(result) -> None:  # noqa: ANN001 - a ProbeResult
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    lengths = result.lengths
    rows = {
        "hardware": f"{result.hardware_id}: {result.hardware.describe()}",
        "model": f"{result.model} ({result.backend}, {result.dtype}, {result.device})",
        "sequence": f"{lengths.prompt_tokens} prompt + {lengths.output_tokens} output tokens"
        f" ({lengths.num_problems} {result.dataset} problems; p90 prompt, output:"
        f" {lengths.output_source})",
        "weights": f"{_mib(result.weights_bytes)} ({result.weights_method})",
        "per sequence": f"{_mib(result.per_sequence_bytes)} measured, KV cache alone"
        f" {_mib(result.kv_bytes_per_sequence or 0)}",
        "fixed per batch": _mib(result.intercept_bytes),
        "available": f"{_mib(result.available_bytes)} ({result.available_method}),"
        f" {result.safety_margin:.0%} kept free",
        "fits (memory model)": str(result.memory_max_batch),
        "predicted max batch": f"{result.predicted_max_batch} (cap {result.batch_cap})",
        "confirmed batch": str(result.confirmed_batch),
    }
    table = Table(show_header=False, title=escape(f"probe: {result.model} on {result.hardware_id}"))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, escape(value))
    console = Console()
    console.print(table)
    console.print(_measurements_table(result, Table))
    for shrink in result.shrinks:
        line = f"shrunk {shrink.from_batch} -> {shrink.to_batch}: {shrink.reason}"
        console.print(line, style="yellow", markup=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)


def _measurements_table(result, table_class):  # noqa: ANN001, ANN202 - rich Table
    table = table_class(title=f"generations ({result.memory_method})")
    for column in ("kind", "batch", "peak above baseline", "seconds", "result"):
        table.add_column(column, justify="right" if column != "kind" else "left")
    for m in result.measurements:
        table.add_row("measure", str(m.batch_size), _mib(m.peak_bytes), f"{m.seconds:.2f}", "ok")
    for a in result.attempts:
        outcome = "ok" if a.ok else "OOM"
        table.add_row("confirm", str(a.batch_size), "-", f"{a.seconds:.2f}", outcome)
    return table

"""Compare two evaluation runs on the problems both finished, by the rule tune applies.

    python scripts/compare_runs.py RUN_DIR REFERENCE_RUN_DIR [--out FILE.json]

Prints (and with ``--out`` writes) each run's accuracy and its configuration, and the
answer-parity report of the first against the second: agreement of extracted answers,
flips (right to wrong, wrong to right), accuracy delta and McNemar's exact p
(:func:`tuner.answer_parity.compare_runs`, the function speedup and the sweep summary use).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.io import write_atomic
from evaluation.records import done_problems, read_records
from tuner.answer_parity import compare_runs


def _run(folder: Path) -> tuple[dict, list[dict]]:
    records, _ = read_records(folder / "records.jsonl")
    problems = list(done_problems(records).values())
    settings = json.loads((folder / "run.json").read_text())
    return settings, problems


def _describe(folder: Path, settings: dict, problems: list[dict]) -> dict:
    right = sum(bool(p.get("correct")) for p in problems)
    return {
        "folder": folder.name,
        "backend": settings.get("backend"),
        "engine": settings.get("engine"),
        "problems": len(problems),
        "correct": right,
        "accuracy": right / len(problems) if problems else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("reference", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    (ours, mine), (theirs, reference) = _run(args.run), _run(args.reference)
    report = compare_runs(mine, reference)
    if report is None:
        print(f"compare_runs: {args.run} and {args.reference} share no problem", file=sys.stderr)
        return 2
    result = {
        "run": _describe(args.run, ours, mine),
        "reference": _describe(args.reference, theirs, reference),
        "parity": report.as_dict() | {"is_acceptable": report.is_acceptable()},
    }
    text = json.dumps(result, indent=2) + "\n"
    print(text, end="")
    if args.out:
        write_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

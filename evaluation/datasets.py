"""Math datasets as lists of :class:`Problem` records.

Four datasets are read from local JSONL files (layout of ``shared/data``): the
data directory comes from the ``--data_dir`` flag, then ``$INFERTUNE_DATA_DIR``,
then ``../shared/data`` next to the repository or the working directory, then
``./data``.  Without a local file they come from the Hugging Face hub when the
optional ``datasets`` package is installed.  ``synthetic`` is generated.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from evaluation.errors import DatasetError
from evaluation.synthetic import SIZE as SYNTHETIC_SIZE
from evaluation.synthetic import synthetic_problem

DATA_DIR_ENV = "INFERTUNE_DATA_DIR"
_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One question with its gold answer and, when known, a reference solution."""

    id: str
    question: str
    answer: str
    solution: str | None = None

    def __post_init__(self) -> None:
        for name in ("id", "question", "answer"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise DatasetError(f"problem field {name!r} must be a non-empty string")


def _number_text(value: object) -> str:
    """Gold answers stored as floats (``145.0``) become ``145``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _gsm8k(row: dict, index: int) -> Problem:
    solution = row["answer"]
    return Problem(
        id=f"gsm8k-{index}",
        question=row["question"],
        answer=solution.rsplit("####", 1)[-1].strip(),
        solution=solution,
    )


def _math500(row: dict, index: int) -> Problem:
    return Problem(
        id=row["unique_id"], question=row["problem"], answer=row["answer"], solution=row["solution"]
    )


def _svamp(row: dict, index: int) -> Problem:
    return Problem(
        id=f"svamp-{row['ID']}",
        question=f"{row['Body'].strip()} {row['Question'].strip()}",
        answer=_number_text(row["Answer"]),
    )


def _gsm_hard(row: dict, index: int) -> Problem:
    return Problem(
        id=f"gsm_hard-{index}", question=row["input"], answer=_number_text(row["target"])
    )


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """Where a dataset lives and how one of its records becomes a :class:`Problem`."""

    path: str  # relative to the data directory
    texts: tuple[str, ...]  # fields that must be strings
    numbers: tuple[str, ...]  # fields that may be a number or a string
    convert: Callable[[dict, int], Problem]
    hub: tuple[str, str | None, str]  # (hub id, config, split)


DATASETS: dict[str, DatasetSpec | None] = {
    "gsm8k": DatasetSpec("gsm8k/test.jsonl", ("question", "answer"), (), _gsm8k,
                         ("openai/gsm8k", "main", "test")),
    "math500": DatasetSpec("math500/test.jsonl", ("problem", "solution", "answer", "unique_id"),
                           (), _math500, ("HuggingFaceH4/MATH-500", None, "test")),
    "svamp": DatasetSpec("svamp/test.jsonl", ("Body", "Question"), ("Answer", "ID"), _svamp,
                         ("ChilleD/SVAMP", None, "test")),
    "gsm_hard": DatasetSpec("gsm_hard/test.jsonl", ("input",), ("target",), _gsm_hard,
                            ("reasoning-machines/gsm-hard", None, "train")),
    "synthetic": None,  # generated, see evaluation.synthetic
}  # fmt: skip

# The real files have lines under 5 KB and sizes under 2 MB.  A 200 MB question line
# once grew the evaluation to 22 GB before the kernel killed it, so lines and files
# far beyond real data are refused before they are read.
MAX_LINE_BYTES = 1 << 20
MAX_FILE_BYTES = 64 << 20


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The data directory to read: the argument, ``$INFERTUNE_DATA_DIR``, then defaults.

    Returns ``None`` when no default folder exists (the hub is then the only source).

    Raises:
        DatasetError: an explicitly given folder does not exist.
    """
    for explicit, origin in (
        (data_dir, "--data_dir"),
        (os.environ.get(DATA_DIR_ENV), DATA_DIR_ENV),
    ):
        if explicit:
            if not Path(explicit).is_dir():
                raise DatasetError(
                    f"{origin} {explicit!s} is not a directory; point it at the data"
                )
            return Path(explicit)
    defaults = (_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data")
    return next((p for p in (*defaults, Path("data")) if p.is_dir()), None)


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict]]:
    """``(where, row)`` for each non-blank line, ``where`` being ``file:line``."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetError(
            f"{path} is {size >> 20} MiB, over the {MAX_FILE_BYTES >> 20} MiB limit for a"
            f" dataset file; split it into smaller files"
        )
    with path.open("rb") as handle:
        for line_number in itertools.count(1):
            # Bounded: a huge line is refused without ever holding it in memory.
            line = handle.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            where = f"{path}:{line_number}"
            if len(line) > MAX_LINE_BYTES:
                raise DatasetError(
                    f"{where}: line longer than {MAX_LINE_BYTES >> 10} KiB, the limit for one"
                    f" problem; remove or shorten that line"
                )
            if line.strip():
                yield where, _parse_line(line, where)


def _parse_line(line: bytes, where: str) -> dict:
    try:
        row = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise DatasetError(
            f"{where}: invalid UTF-8 at byte {error.start}; save the file as UTF-8"
        ) from None
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{where}: malformed JSON ({error.msg}); fix or remove that line"
        ) from None
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: a line must be a JSON object, got {type(row).__name__}")
    return row


def _check_row(row: dict, spec: DatasetSpec, where: str) -> None:
    fields = (*spec.texts, *spec.numbers)
    missing = [f for f in fields if f not in row]
    if missing:
        raise DatasetError(
            f"{where}: missing field(s) {', '.join(missing)}; each line needs {', '.join(fields)}"
        )
    for name in fields:
        value = row[name]
        if isinstance(value, str):
            continue
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if name in spec.texts or not is_number or not math.isfinite(value):
            kind = "text" if name in spec.texts else "text or a finite number"
            raise DatasetError(
                f"{where}: field {name!r} must be {kind}, got {json.dumps(value)[:40]};"
                f" fix that line"
            )


def _to_problems(rows: Iterable[tuple[str, dict]], spec: DatasetSpec) -> list[Problem]:
    """Convert checked rows; ids must be unique, or a result would count one problem twice."""
    problems: list[Problem] = []
    first_seen: dict[str, str] = {}
    for index, (where, row) in enumerate(rows):
        _check_row(row, spec, where)
        try:
            problem = spec.convert(row, index)
        except DatasetError as error:
            raise DatasetError(f"{where}: {error}") from None
        if problem.id in first_seen:
            raise DatasetError(
                f"{where}: problem id {problem.id!r} repeats the one at {first_seen[problem.id]};"
                f" ids must be unique: remove or rename one"
            )
        first_seen[problem.id] = where
        problems.append(problem)
    return problems


def _hub_rows(name: str, spec: DatasetSpec, looked_in: Path | None) -> Iterable[dict]:
    where = f"{looked_in / spec.path}" if looked_in else f"a data directory ({DATA_DIR_ENV})"
    try:
        import datasets as hf_datasets
    except ImportError:
        raise DatasetError(
            f"no local file for dataset {name!r} (looked for {where}); pass --data_dir or set"
            f" {DATA_DIR_ENV}, or `pip install datasets` to download it from the hub"
        ) from None
    hub_id, config, split = spec.hub
    try:
        return hf_datasets.load_dataset(hub_id, config, split=split)
    except Exception as error:  # offline, renamed, ...: the user needs the cause, in one line
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DatasetError(
            f"dataset {name!r}: no local file ({where}) and the hub failed: {message}"
        ) from None


def _all_problems(name: str, data_dir: str | Path | None) -> list[Problem]:
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DatasetError(f"unknown dataset {name!r}{hint}; choose one of: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    if spec is None:
        return [_synthetic(i) for i in range(SYNTHETIC_SIZE)]
    root = resolve_data_dir(data_dir)
    if root is not None and (root / spec.path).is_file():
        rows: Iterable[tuple[str, dict]] = _read_jsonl(root / spec.path)
    else:
        hub_id = spec.hub[0]
        rows = ((f"{hub_id} row {i}", row) for i, row in enumerate(_hub_rows(name, spec, root)))
    return _to_problems(rows, spec)


def load_problems(
    name: str, *, data_dir: str | Path | None = None, start: int = 0, count: int = 0
) -> list[Problem]:
    """Problems ``start .. start + count`` of dataset ``name`` (``count=0``: to the end).

    Raises:
        DatasetError: unknown name, missing file, malformed line, or a slice that
            does not fit in the dataset.
    """
    if start < 0 or count < 0:
        raise DatasetError(f"--start and --count must be >= 0, got {start} and {count}")
    if name == "synthetic":  # generate only the slice: problem i depends on i alone
        size = SYNTHETIC_SIZE
        indices = range(start, size if count == 0 else start + count)
        if start + count <= size and start < size:
            return [_synthetic(i) for i in indices]
    else:
        problems = _all_problems(name, data_dir)
        size = len(problems)
        if start + count <= size and start < size:
            return problems[start : size if count == 0 else start + count]
    raise DatasetError(
        f"--start {start} --count {count} asks for problems beyond the end of {name!r},"
        f" which has {size}; lower --count (0 = all)"
    )


def _synthetic(index: int) -> Problem:
    question, answer, solution = synthetic_problem(index)
    return Problem(id=f"synthetic-{index}", question=question, answer=answer, solution=solution)

"""The results folder of one run: its name and its settings file (written atomically).

Layout (compatible with the old system's)::

    results/<round>_<model>_<dataset>_<count>_<MMDD>[_<HHMM>]/
        run.json                       settings: model, dataset, engine, prompt, versions
        records.jsonl                  append-only per-problem records (source of truth)
        answers/<model>_<dataset>_<mode>_answers.json
        log/<model>_<dataset>_<mode>.log
        metrics.csv                    one row per run (appended)
        metrics_<mode>.txt

Everything but ``records.jsonl`` is derived from it and written atomically.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from common.io import NotWritableError, write_atomic
from common.io import check_writable as check_writable_folder
from common.limits import read_text_limited
from common.naming import model_slug
from engines.errors import ConfigError
from evaluation.errors import ResultsError

SCHEMA_VERSION = 1
SETTINGS_FILE = "run.json"
# A resumed run must produce the same records as an uninterrupted one, so
# everything that changes what is generated or graded must match.
RESUME_MUST_MATCH = ("model", "dataset", "mode", "start", "problem_ids", "prompt")


def file_stem(settings: dict) -> str:
    """``<model>_<dataset>_<mode>``, the stem of the answers and log file names."""
    return f"{model_slug(settings['model'])}_{settings['dataset']}_{settings['mode']}"


def new_run_dir(results_dir: Path, run_round: str, model: str, dataset: str, count: int,
                now: dt.datetime | None = None) -> Path:  # fmt: skip
    """A fresh folder name; ``_HHMM`` (then a counter) is added only when needed."""
    now = now or dt.datetime.now()
    base = f"{run_round}_{model_slug(model)}_{dataset}_{count}_{now:%m%d}"
    candidates = [base, f"{base}_{now:%H%M}"] + [f"{base}_{now:%H%M}-{i}" for i in range(2, 100)]
    for name in candidates:
        path = results_dir / name
        # Every folder the project creates must stay inside its root, whatever a name holds.
        if path.resolve().parent != results_dir.resolve():
            raise ResultsError(
                f"run folder {name!r} would leave {results_dir}; use another --round"
            )
        if not path.exists():
            return path
    raise ResultsError(f"too many runs named {base} in {results_dir}; use another --round")


def check_writable(directory: Path) -> None:
    """Fail now, before a model loads for minutes, if results cannot be written."""
    try:
        check_writable_folder(directory, what="results", fix="pass a writable --results-dir")
    except NotWritableError as error:
        raise ResultsError(str(error)) from None


def load_settings(run_dir: Path) -> dict:
    """The settings of an existing run folder (for ``--resume``), their types checked.

    Raises:
        ResultsError: no ``run.json``, or one that is unreadable, too large, from a
            newer infertune, or has a field of the wrong type (named in the message).
    """
    path = run_dir / SETTINGS_FILE
    if not path.is_file():
        raise ResultsError(f"{run_dir} is not a run folder (no {SETTINGS_FILE}); check --resume")
    try:
        settings = json.loads(read_text_limited(path, what="settings file"))
    except (OSError, ConfigError, json.JSONDecodeError) as error:
        raise ResultsError(f"cannot read {path}: {error}") from None
    problem = _settings_problem(settings)
    if problem:
        raise ResultsError(f"{path}: {problem}; it is not a run folder's settings, check --resume")
    if settings.get("schema_version", 0) > SCHEMA_VERSION:
        raise ResultsError(f"{path} was written by a newer infertune; upgrade to resume it")
    return settings


# field -> (types, what the message calls them); every reader of run.json relies on these
_SETTINGS_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "schema_version": ((int,), "an integer"),
    "model": ((str,), "a string"),
    "dataset": ((str,), "a string"),
    "mode": ((str,), "a string"),
    "start": ((int,), "an integer"),
    "problem_ids": ((list,), "a list of problem ids"),
    "prompt": ((dict,), "an object"),
    "engine": ((dict,), "an object"),
    "sessions": ((list,), "a list"),
}
_REQUIRED = ("model", "dataset", "mode", "start", "problem_ids", "prompt")


def _settings_problem(settings: object) -> str | None:
    if not isinstance(settings, dict):
        return "not a JSON object"
    for field in _REQUIRED:
        if field not in settings:
            return f"no {field!r} field"
    for field, (types, shown) in _SETTINGS_FIELDS.items():
        value = settings.get(field)
        wrong = isinstance(value, bool) or not isinstance(value, types)
        if field in settings and wrong:
            return f"{field!r} must be {shown}, got {_short(value)}"
    if not all(isinstance(i, str) for i in settings["problem_ids"]):
        return "'problem_ids' must be a list of strings"
    sessions = settings.get("sessions", [])
    if not all(isinstance(s, dict) for s in sessions):
        return "'sessions' must be a list of objects"
    return None


def check_resumable(stored: dict, wanted: dict, extra_fields: tuple[str, ...] = ()) -> None:
    """Refuse to mix runs: :data:`RESUME_MUST_MATCH` and ``extra_fields`` must agree."""
    for field in dict.fromkeys((*RESUME_MUST_MATCH, *extra_fields)):
        if stored.get(field) != wanted.get(field):
            shown = {k: _short(d.get(field)) for k, d in (("folder", stored), ("now", wanted))}
            raise ResultsError(
                f"--resume folder is from a different run: {field} is {shown['folder']} there"
                f" but {shown['now']} now; resume with the same settings or start a new run"
            )


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def save_settings(run_dir: Path, settings: dict) -> None:
    write_atomic(run_dir / SETTINGS_FILE, json.dumps(settings, indent=2, ensure_ascii=False))

"""Where a study lives: create or join it in an Optuna storage, with one-line errors.

Several workers share one study through one storage (an RDB URL, or a journal
file that needs no database); see :mod:`tuner.search.study` for what a trial does.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from engines.errors import InfertuneError
from tuner.search.study import SlowerThanBestPruner, StudySettings, create_sampler


class StudyError(InfertuneError):
    """The study storage cannot be opened, or the study cannot be created."""


def open_study(storage: str, study_name: str, settings: StudySettings) -> optuna.Study:
    """Create or join study ``study_name`` in ``storage``.

    ``storage`` is an Optuna RDB URL (``sqlite:///tune.db``, ``postgresql://...``)
    or ``journal:PATH`` for a journal file (safe for several processes on one
    file system, no database needed).

    Raises:
        StudyError: the storage cannot be reached or opened; the message says why.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _refuse_foreign_sqlite_file(storage)
    try:
        backend = _storage(storage)
        return optuna.create_study(
            storage=backend,
            study_name=study_name,
            direction="maximize",
            load_if_exists=True,
            sampler=create_sampler(settings.seed, settings.n_trials),
            pruner=SlowerThanBestPruner(settings.prune_ratio),
        )
    except Exception as error:  # drivers raise anything: the user needs one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StudyError(
            f"cannot open study storage {storage!r}: {first[:300]}; pass a reachable"
            " --storage URL (sqlite:///PATH, journal:PATH, postgresql://...)"
        ) from None


def _storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = url.removeprefix("journal:").removeprefix("//")
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    # Heartbeats turn trials of a killed worker into FAIL instead of RUNNING forever.
    return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=600)


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _refuse_foreign_sqlite_file(url: str) -> None:
    """SQLAlchemy turns any existing small file into a database: refuse one that is not."""
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb") as file:
        header = file.read(len(_SQLITE_MAGIC))
    if header != _SQLITE_MAGIC:
        raise StudyError(
            f"{path} exists and is not a SQLite database; pass another --storage path"
            " or move the file away"
        )

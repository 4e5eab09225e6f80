"""Where a study lives: create or join it in an Optuna storage, with one-line errors.

Several workers share one study through one storage (an RDB URL, or a journal
file that needs no database); see :mod:`tuner.search.study` for what a trial does.

A worker killed mid-trial cannot mark its trial finished, and a trial left
RUNNING would count toward the budget forever.  Such trials are failed, and
their configuration is queued once more (:data:`MAX_RETRY`), when the next
worker opens the study:

- RDB storages use Optuna's heartbeat: a live worker's trials beat every
  :data:`HEARTBEAT_INTERVAL_S`; one silent for :data:`GRACE_PERIOD_S` is stale.
- Journal storages have no heartbeat in Optuna, so a trial is stale there once
  it has run :data:`JOURNAL_STALE_TRIAL_TIMEOUTS` times the trial time limit,
  which a live worker enforces on each of a trial's measurements.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from engines.errors import InfertuneError
from tuner.search.study import SlowerThanBestPruner, StudySettings, create_sampler

HEARTBEAT_INTERVAL_S = 30
GRACE_PERIOD_S = 180  # six missed beats: a busy live worker is never taken for dead
MAX_RETRY = 1  # a configuration that kills its worker twice stays failed
JOURNAL_STALE_TRIAL_TIMEOUTS = 3  # a trial measures twice (reference and candidate), plus loads


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
        study = optuna.create_study(
            storage=backend,
            study_name=study_name,
            direction="minimize",  # predicted wall seconds (tuner.search.objective_wall)
            load_if_exists=True,
            sampler=create_sampler(settings.seed, settings.n_trials),
            pruner=SlowerThanBestPruner(settings.prune_ratio),
        )
        if isinstance(backend, optuna.storages.JournalStorage):
            fail_old_journal_trials(study, settings.trial_timeout_s * JOURNAL_STALE_TRIAL_TIMEOUTS)
        else:  # the heartbeat's callback queues the retry
            with _quiet_experimental():
                optuna.storages.fail_stale_trials(study)
    except Exception as error:  # drivers raise anything: the user needs one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StudyError(
            f"cannot open study storage {storage!r}: {first[:300]}; pass a reachable"
            " --storage URL (sqlite:///PATH, journal:PATH, postgresql://...)"
        ) from None
    if study.direction != optuna.study.StudyDirection.MINIMIZE:  # joined, not created
        raise StudyError(
            f"study {study_name!r} maximised problems/s (made by an older infertune); tuning now"
            " minimises the run's wall time: pass another --study-name"
        )
    return study


def fail_old_journal_trials(study: optuna.Study, stale_after_s: float) -> list[int]:
    """Fail the RUNNING trials started ``stale_after_s`` ago or more, and queue them again.

    Returns:
        The numbers of the trials that were failed.
    """
    now = dt.datetime.now()  # Optuna stamps trials with naive local times
    with _quiet_experimental():
        retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start
        if started is None or (now - started).total_seconds() < stale_after_s:
            continue
        # skip_if_finished: another worker may have failed it (or its own finished it) meanwhile
        ended = study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        if ended.state == TrialState.FAIL and ended.datetime_complete is not None:
            retry(study, ended)
            failed.append(trial.number)
    return failed


def _storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = url.removeprefix("journal:").removeprefix("//")
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    with _quiet_experimental():
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=HEARTBEAT_INTERVAL_S,
            grace_period=GRACE_PERIOD_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Heartbeats have been "experimental" since Optuna 2.9: a warning a user cannot act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


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

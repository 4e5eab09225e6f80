"""Study storage: an existing file that is not a database is never turned into one, and a
trial left RUNNING by a dead worker is failed and retried when the next worker opens it."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState

from commands.main import main
from tuner.search.storage import StudyError, fail_old_journal_trials, open_study
from tuner.search.study import StudySettings


def test_a_non_database_file_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"my notes, not a database\n")
    with pytest.raises(StudyError, match="not a SQLite database"):
        open_study(f"sqlite:///{notes}", "s", StudySettings(model="synthetic:tiny"))
    assert notes.read_bytes() == b"my notes, not a database\n"


def test_the_tune_command_refuses_it_in_one_line(tmp_path: Path, capsys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"x" * 100)
    code = main(
        ["tune", "--model", "synthetic:tiny", "--dataset", "synthetic", "--count", "4",
         "--storage", f"sqlite:///{notes}", "--profiles-dir", str(tmp_path / "p")]
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "not a SQLite database" in err[0]
    assert notes.read_bytes() == b"x" * 100


def test_an_existing_database_and_a_new_path_still_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    settings = StudySettings(model="synthetic:tiny")
    open_study(url, "s", settings)  # creates it
    assert open_study(url, "s", settings).study_name == "s"  # and joins it


def _objective(trial: optuna.Trial) -> float:
    return float(trial.suggest_int("batch_size", 1, 64))


def _killed_mid_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """A trial left RUNNING by a worker that died after choosing its batch size."""
    trial = study.ask()
    trial.suggest_int("batch_size", 1, 64)
    return study.get_trials(deepcopy=False)[trial.number]


def test_a_dead_workers_trial_fails_and_is_retried_by_the_next_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    settings = StudySettings(model="synthetic:tiny")
    first = open_study(url, "s", settings)
    dead, live = _killed_mid_trial(first), _killed_mid_trial(first)
    storage = first._storage
    for trial in (dead, live):  # both beat once; then the dead worker went silent an hour ago
        storage.record_heartbeat(trial._trial_id)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, '-1 hour')"
                " WHERE trial_id = :id"
            ),
            {"id": dead._trial_id},
        )
    engine.dispose()

    second = open_study(url, "s", settings)  # a new worker joins the study
    states = {t.number: t.state for t in second.get_trials(deepcopy=False)}
    assert states[dead.number] == TrialState.FAIL
    assert states[live.number] == TrialState.RUNNING  # a live worker's trial is left alone
    [retry] = second.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert retry.system_attrs["failed_trial"] == dead.number

    second.optimize(_objective, n_trials=1)  # the retry runs the dead trial's configuration
    done = second.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert [t.params for t in done] == [dead.params]


def test_a_journal_trial_older_than_its_time_limits_fails_and_is_retried(tmp_path: Path) -> None:
    url = f"journal:{tmp_path / 'study.log'}"
    dead = _killed_mid_trial(open_study(url, "s", StudySettings(model="synthetic:tiny")))

    fresh = open_study(url, "s", StudySettings(model="synthetic:tiny", trial_timeout_s=600))
    assert fresh.get_trials(deepcopy=False)[dead.number].state == TrialState.RUNNING
    assert fail_old_journal_trials(fresh, stale_after_s=3600) == []

    time.sleep(0.05)
    stale = open_study(url, "s", StudySettings(model="synthetic:tiny", trial_timeout_s=0.01))
    assert stale.get_trials(deepcopy=False)[dead.number].state == TrialState.FAIL
    stale.optimize(_objective, n_trials=1)
    [done] = stale.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert done.params == dead.params and done.system_attrs["failed_trial"] == dead.number

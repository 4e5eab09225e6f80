"""Open a run folder for writing: claimed, locked by its one writer, resumable from the start.

- A fresh run claims its folder with an exclusive ``mkdir``, so two runs that
  picked the same name in the same minute never share it.
- The writer holds an ``fcntl.flock`` on ``.lock`` in the folder for the whole
  run.  The kernel releases it when the process ends, however it ends, so a
  lock is never stale; a second writer (another ``--resume`` of the folder, a
  sweep job started twice) is refused in one line naming the holder's pid.
  The file stays empty: the pid comes from the kernel's lock table, so a run
  changes no byte of a folder it is refused.
- ``run.json`` is written (atomically) once the records have been checked and
  before the model loads, so a kill at any later moment leaves a folder that
  ``--resume`` accepts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from common.stopping import Stopped
from evaluation.errors import ResultsError
from evaluation.records import RECORDS_FILE, RecordStore
from evaluation.results import save_settings

LOCK_FILE = ".lock"


class RunFolderBusyError(ResultsError):
    """Another live process is writing the run folder."""


@contextlib.contextmanager
def open_run_folder(run_dir: Path, settings: dict, *, is_resume: bool) -> Iterator[RecordStore]:
    """The folder's record store, with the folder locked and ``settings`` saved.

    A fresh run's folder is removed again when the block fails before any record
    was written (a model that does not load leaves nothing behind), but not when
    the run was stopped by a signal: that folder is resumable and reported so.

    Raises:
        RunFolderBusyError: another process holds the folder.
        CorruptRecordsError: the record file has a damaged line (nothing is changed).
    """
    if not is_resume:
        _claim(run_dir)
    try:
        with _writer_lock(run_dir), RecordStore(run_dir) as store:
            save_settings(run_dir, settings)
            yield store
    except Stopped:
        raise
    except BaseException:
        records = run_dir / RECORDS_FILE
        if not is_resume and (not records.exists() or not records.stat().st_size):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _claim(run_dir: Path) -> None:
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir()
    except FileExistsError:
        raise ResultsError(
            f"{run_dir} was just created by another run; run again for a fresh folder"
        ) from None


@contextlib.contextmanager
def _writer_lock(run_dir: Path) -> Iterator[None]:
    path = run_dir / LOCK_FILE
    with path.open("a") as handle:  # "a": write access, which NFS needs for an exclusive lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderBusyError(
                f"{run_dir} is being written by {lock_holder(path)}; wait for it to end"
                " (or stop it), then resume"
            ) from None
        yield  # closing the file releases the lock


def lock_holder(path: Path) -> str:
    """``"pid N"`` of the process holding a ``flock`` on ``path``, from ``/proc/locks``."""
    try:
        inode = os.stat(path).st_ino
        with open("/proc/locks", encoding="ascii") as table:
            lines = table.read().splitlines()
    except OSError:  # not Linux, or the file went away meanwhile
        return "another process"
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 4242 00:2f:1234 0 EOF": kind, pid, major:minor:inode
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
            return f"pid {fields[4]}"
    return "another process"

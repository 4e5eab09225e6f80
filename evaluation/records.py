"""The append-only record file: the single source of truth of a run.

Each line of ``records.jsonl`` is one JSON object with a ``kind``:

- ``"problem"``: one finished problem (id, index, response, grade, tokens, and
  any extra fields a mode adds, e.g. an agent's trace);
- ``"batch"``: the problems of one engine batch and how long it took;
- ``"error"``: problems whose generation raised; they are *not* done and are
  generated again on resume.

A batch's lines are written in one ``write`` followed by ``flush`` and
``fsync``, so a crash loses at most the batch in flight.  A crash in the middle
of that write can leave a torn last line (no newline): readers ignore it and
:class:`RecordStore` cuts it off before appending.  That is the only damage a
crash can do, so it is the only damage repaired: any other unreadable line
(a flipped byte, NUL bytes, a line that is not a record) is refused with its
line number and nothing is rewritten, because cutting there would delete the
good records after it.  Later copies of a problem id never replace the first one.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterable
from pathlib import Path

from common.io import disk_full_error, is_disk_full
from evaluation.errors import ResultsError

RECORDS_FILE = "records.jsonl"
# Fault injection for crash tests: SIGKILL this process right after the Nth
# batch reached the disk.  It acts at the lowest layer (the write itself), so
# the test exercises the real recovery path.
KILL_AFTER_BATCH_ENV = "INFERTUNE_KILL_AFTER_BATCH"
# The same, but SIGSTOP: the process freezes right after the Nth batch, so a
# test can kill whatever drives it (a sweep) at exactly that point.
STOP_AFTER_BATCH_ENV = "INFERTUNE_STOP_AFTER_BATCH"


class CorruptRecordsError(ResultsError):
    """A complete line of a record file is not a readable record."""


def read_records(path: Path) -> tuple[list[dict], int]:
    """All records of ``path`` and the byte length of its complete lines.

    A torn last line (no newline) is left out of both.

    Raises:
        CorruptRecordsError: a complete line is not a record; the message names it.
    """
    if not path.exists():
        return [], 0
    records, good_bytes = [], 0
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break  # torn by a crash mid-write
            records.append(_parse(line, path, line_number))
            good_bytes += len(line)
    return records, good_bytes


def _parse(line: bytes, path: Path, line_number: int) -> dict:
    try:
        # Decoded explicitly: json.loads(bytes) guesses UTF-16 from NUL bytes.
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        problem = "invalid UTF-8"
    except json.JSONDecodeError as error:
        problem = f"malformed JSON: {error.msg}"
    else:
        problem = _shape_problem(record)
        if problem is None:
            return record
    raise CorruptRecordsError(
        f"{path}:{line_number}: corrupt record ({problem}); nothing was changed:"
        f" repair or delete that line, then resume"
    )


def _shape_problem(record: object) -> str | None:
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        return "not an object with a string 'kind'"
    if record["kind"] == "problem" and not isinstance(record.get("id"), str):
        return "a problem record without a string 'id'"
    return None


def done_problems(records: Iterable[dict]) -> dict[str, dict]:
    """The first ``problem`` record of every id (insertion-ordered)."""
    done: dict[str, dict] = {}
    for record in records:
        if record.get("kind") == "problem":
            done.setdefault(record["id"], record)
    return done


class RecordStore:
    """Appends records to one run's record file.  One writer per file."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / RECORDS_FILE
        self.records, good_bytes = read_records(self.path)
        # unbuffered: a failed write leaves nothing in a buffer for close() to retry
        self._handle = self.path.open("ab", buffering=0)
        if self._handle.tell() > good_bytes:
            self._handle.truncate(good_bytes)
            self._handle.seek(good_bytes)
        self._done = done_problems(self.records)
        self._num_appends = 0
        kill_after = os.environ.get(KILL_AFTER_BATCH_ENV)
        self._kill_after = int(kill_after) if kill_after else None
        stop_after = os.environ.get(STOP_AFTER_BATCH_ENV)
        self._stop_after = int(stop_after) if stop_after else None

    @property
    def done(self) -> dict[str, dict]:
        """Finished problems by id."""
        return self._done

    def append(self, records: list[dict]) -> None:
        """Write ``records`` durably; problem ids already done are skipped."""
        fresh = [r for r in records if r.get("kind") != "problem" or r["id"] not in self._done]
        if not fresh:
            return
        payload = b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in fresh)
        self._write(payload)
        self.records.extend(fresh)
        for record in fresh:
            if record.get("kind") == "problem":
                self._done[record["id"]] = record
        self._num_appends += 1
        if self._kill_after is not None and self._num_appends >= self._kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if self._stop_after is not None and self._num_appends == self._stop_after:
            os.kill(os.getpid(), signal.SIGSTOP)

    def _write(self, payload: bytes) -> None:
        """Append ``payload`` and ``fsync`` it, or leave the file as it was and raise."""
        start = self._handle.tell()
        try:
            view = memoryview(payload)
            while view:  # an unbuffered write may be partial
                view = view[self._handle.write(view) :]
            os.fsync(self._handle.fileno())
        except OSError as error:
            # A full disk can leave part of the batch written: cut it, so that the file
            # ends on a whole record and the run resumes from there.
            with contextlib.suppress(OSError):
                self._handle.truncate(start)
                self._handle.seek(start)
            if is_disk_full(error):
                raise disk_full_error(self.path.parent) from None
            raise

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The append-only record file: the single source of truth of a run.

Each line of ``records.jsonl`` is one JSON object with a ``kind``:

- ``"problem"``: one finished problem (id, index, response, grade, tokens, and
  any extra fields a mode adds, e.g. an agent's trace);
- ``"batch"``: the problems of one engine batch and how long it took;
- ``"error"``: problems whose generation raised; they are *not* done and are
  generated again on resume.

A batch's lines are written in one ``write`` followed by ``flush`` and
``fsync``, so a crash loses at most the batch in flight.  A crash in the middle
of that write can leave a torn last line: readers ignore it and
:meth:`RecordStore.open` cuts it off before appending.  Later copies of a
problem id never replace the first one.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterable
from pathlib import Path

RECORDS_FILE = "records.jsonl"
# Fault injection for crash tests: SIGKILL this process right after the Nth
# batch reached the disk.  It acts at the lowest layer (the write itself), so
# the test exercises the real recovery path.
KILL_AFTER_BATCH_ENV = "INFERTUNE_KILL_AFTER_BATCH"
# The same, but SIGSTOP: the process freezes right after the Nth batch, so a
# test can kill whatever drives it (a sweep) at exactly that point.
STOP_AFTER_BATCH_ENV = "INFERTUNE_STOP_AFTER_BATCH"


def read_records(path: Path) -> tuple[list[dict], int]:
    """All intact records of ``path`` and the byte length of its intact prefix."""
    if not path.exists():
        return [], 0
    records, good_bytes = [], 0
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break  # torn by a crash mid-write
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
            good_bytes += len(line)
    return records, good_bytes


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
        self._handle = self.path.open("ab")
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
        self._handle.write(payload)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.records.extend(fresh)
        for record in fresh:
            if record.get("kind") == "problem":
                self._done[record["id"]] = record
        self._num_appends += 1
        if self._kill_after is not None and self._num_appends >= self._kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if self._stop_after is not None and self._num_appends == self._stop_after:
            os.kill(os.getpid(), signal.SIGSTOP)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

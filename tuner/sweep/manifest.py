"""The sweep manifest: every job of the grid, its state and its results folder.

``<results root>/sweep-manifest.json`` is the sweep's memory between
invocations.  Several processes (the coordinator, Ray workers on other
machines sharing the folder) update it, so every change is a read-modify-write
under an exclusive ``fcntl.flock`` on a separate lock file, and the file itself
is replaced atomically (temp file + ``os.replace``): readers never see half a
file, and no update is lost.

A job's state is ``pending``, ``running``, ``done`` or ``failed``.  A job left
``running`` by a sweep that was killed is simply run again: the evaluation's
own ``--resume`` makes that continue where the record file stops.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.io import write_atomic
from common.limits import read_text_limited
from engines.errors import ConfigError, InfertuneError

MANIFEST_FILE = "sweep-manifest.json"
_LOCK_FILE = ".sweep-manifest.lock"
_RUN_LOCK_FILE = ".sweep-run.lock"
SCHEMA_VERSION = 1
STATES = ("pending", "running", "done", "failed")


class ManifestError(InfertuneError):
    """The manifest is unreadable, or another sweep is running on the same results root."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One unit of work: tune a model, or evaluate one (model, dataset, mode) cell."""

    id: str
    kind: str  # "tune" or "eval"
    model: str
    dataset: str | None = None
    count: int = 0
    start: int = 0
    mode: str | None = None  # the mode's label

    def __post_init__(self) -> None:
        if self.kind not in ("tune", "eval"):
            raise ValueError(f"kind must be 'tune' or 'eval', got {self.kind!r}")


class Manifest:
    """The manifest file of one results root; safe to use from several processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / MANIFEST_FILE

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The manifest's data, locked; written back when the block ends without error."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / _LOCK_FILE).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            data = self._read()
            yield data
            data["updated"] = _now()
            write_atomic(self.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"kind": "infertune.sweep", "schema_version": SCHEMA_VERSION, "jobs": {}}
        try:
            data = json.loads(read_text_limited(self.path, what="sweep manifest"))
        except (OSError, ConfigError, json.JSONDecodeError) as error:
            raise ManifestError(
                f"cannot read {self.path} ({error}); move it away to start the sweep afresh"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
            raise ManifestError(
                f"{self.path} is not a sweep manifest (no 'jobs' object); move it away"
                " to start the sweep afresh"
            )
        if not isinstance(data.get("schema_version", 0), int):
            raise ManifestError(f"{self.path}: 'schema_version' must be an integer; move it away")
        if data.get("schema_version", 0) > SCHEMA_VERSION:
            raise ManifestError(f"{self.path} was written by a newer infertune; upgrade it")
        return data

    def jobs(self) -> dict[str, dict[str, Any]]:
        """A snapshot of every job's entry, by id."""
        with self._locked() as data:
            return json.loads(json.dumps(data["jobs"]))

    def sync(self, jobs: list[Job]) -> dict[str, dict[str, Any]]:
        """Add new jobs as pending; a job left ``running`` by a dead sweep becomes pending."""
        with self._locked() as data:
            for job in jobs:
                entry = data["jobs"].setdefault(job.id, _new_entry(job))
                if entry["state"] == "running":
                    entry["state"] = "pending"
                    entry["error"] = "interrupted; resumed by the next run"
            return json.loads(json.dumps(data["jobs"]))

    def update(self, job_id: str, **changes: Any) -> dict[str, Any]:
        """Apply ``changes`` to one job's entry and return it.

        Two changes are increments rather than values, so that concurrent
        writers never lose one: ``add_attempt=True`` and ``add_wall_s=SECONDS``.
        """
        if "state" in changes and changes["state"] not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {changes['state']!r}")
        with self._locked() as data:
            entry = data["jobs"][job_id]
            if changes.pop("add_attempt", False):
                entry["attempts"] += 1
            entry["wall_s"] = round(entry["wall_s"] + changes.pop("add_wall_s", 0.0), 3)
            entry.update(changes, updated=_now())
            return dict(entry)

    @contextlib.contextmanager
    def exclusive_run(self) -> Iterator[None]:
        """Held for a whole sweep: two sweeps on one root would run the same jobs twice."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / _RUN_LOCK_FILE).open("a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                raise ManifestError(
                    f"another sweep is running on {self.root} ({lock.read().strip()});"
                    " wait for it or use another results root"
                ) from None
            lock.truncate(0)
            lock.write(f"pid {os.getpid()} on {os.uname().nodename}")
            lock.flush()
            yield


def _new_entry(job: Job) -> dict[str, Any]:
    return asdict(job) | {
        "state": "pending", "attempts": 0, "folder": None, "profile": None, "error": None,
        "wall_s": 0.0, "updated": _now(),
    }  # fmt: skip


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")

"""Writes that never leave a half-written file, and the JSON helpers built on them.

A full disk (or quota) is a user's problem, not a bug: every write here turns
``ENOSPC``/``EDQUOT`` into :class:`DiskFullError`, one line naming the folder and
its free space, after putting the files back as they were.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from common.errors import InfertuneError

# mkstemp creates 0600 files; results and profiles are meant to be read by others.
FILE_MODE = 0o644
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(InfertuneError):
    """A write failed for lack of disk space or quota; nothing was left half written."""


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in _DISK_FULL


def disk_full_error(folder: Path) -> DiskFullError:
    """The one-line error for a full disk under ``folder``, with its free space."""
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(f"no space left to write in {folder} ({free}); free some space")


class NotWritableError(InfertuneError):
    """A folder the command must write into cannot be created or written."""


def check_writable(directory: Path, *, what: str, fix: str) -> None:
    """Create ``directory`` if needed and write a file there, now rather than after hours.

    Args:
        directory: The folder.
        what: What goes there, for the message, e.g. ``"results"``.
        fix: What the message tells the user to do, e.g. ``"pass a writable --results-dir"``.

    Raises:
        NotWritableError: the folder cannot be created or written into.
    """
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as error:
        raise NotWritableError(
            f"cannot write {what} to {directory} ({error.strerror or error}); {fix}"
        ) from None


def check_can_create(directory: Path, *, what: str, fix: str) -> None:
    """Like :func:`check_writable`, but creates nothing: for a folder written only at the end.

    Raises:
        NotWritableError: ``directory`` or its nearest existing parent is not a
            writable folder.
    """
    existing = Path(directory).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problem = "not a folder" if not existing.is_dir() else "not writable"
        raise NotWritableError(
            f"cannot write {what} to {directory} ({existing} is {problem}); {fix}"
        )


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half.

    The data goes to a temporary file in the same folder, is flushed and
    ``fsync``-ed, and is then moved into place with ``os.replace``; on any
    failure the temporary file is removed and the old file is left as it was.
    The file is readable by everyone (mode 0644), like one written with ``open``.

    Raises:
        DiskFullError: the disk or quota is full (the old file is kept).

    Args:
        path: The file to write; missing parent folders are created.
        data: Text (written as UTF-8) or bytes.

    Returns:
        ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        if is_disk_full(error):
            raise disk_full_error(path.parent) from None
        raise
    mode, encoding = ("w", "utf-8") if isinstance(data, str) else ("wb", None)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException as error:
        Path(temp).unlink(missing_ok=True)
        if is_disk_full(error):
            raise disk_full_error(path.parent) from None
        raise
    return path


def write_json(path: Path, data: Any, *, indent: int = 2) -> Path:
    """Write ``data`` as UTF-8 JSON (non-ASCII kept as is) with :func:`write_atomic`."""
    return write_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    """The JSON document in ``path`` (``OSError``/``JSONDecodeError`` propagate)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))

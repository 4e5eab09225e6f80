"""Writes that never leave a half-written file, and the JSON helpers built on them."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

# mkstemp creates 0600 files; results and profiles are meant to be read by others.
FILE_MODE = 0o644


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half.

    The data goes to a temporary file in the same folder, is flushed and
    ``fsync``-ed, and is then moved into place with ``os.replace``; on any
    failure the temporary file is removed and the old file is left as it was.
    The file is readable by everyone (mode 0644), like one written with ``open``.

    Args:
        path: The file to write; missing parent folders are created.
        data: Text (written as UTF-8) or bytes.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    mode, encoding = ("w", "utf-8") if isinstance(data, str) else ("wb", None)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: Path, data: Any, *, indent: int = 2) -> Path:
    """Write ``data`` as UTF-8 JSON (non-ASCII kept as is) with :func:`write_atomic`."""
    return write_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    """The JSON document in ``path`` (``OSError``/``JSONDecodeError`` propagate)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))

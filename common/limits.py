"""Reading a user's file without trusting its size or its YAML.

A settings file (a profile, ``run.json``, a sweep file, a benchmark JSON) is
small.  Reading one whole before knowing that let ``--profile /dev/zero`` grow
the process until the kernel killed it, and a "billion laughs" YAML, a few
lines of nested aliases, expands into billions of values in whatever walks it.
These readers refuse such inputs in one line, before they cost memory.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from common.errors import ConfigError

MAX_SETTINGS_BYTES = 16 << 20  # far above any real settings file, far below harm
MAX_YAML_VALUES = 100_000  # values after expanding aliases


class InputLimitError(ConfigError):
    """An input is too large, not a regular file, expands too far, or is not plain data."""


def read_text_limited(path: str | Path, *, what: str, max_bytes: int = MAX_SETTINGS_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``, refused beyond ``max_bytes``.

    Args:
        path: The file.
        what: How the message names the file, e.g. ``"profile"``.
        max_bytes: The largest accepted size.

    Raises:
        FileNotFoundError: ``path`` does not exist (callers word that themselves).
        InputLimitError: not a regular file (``/dev/zero``, a FIFO, a folder),
            larger than ``max_bytes``, or not UTF-8.
    """
    path = Path(path)
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise InputLimitError(f"{what} {path} is not a regular file; pass a file")
    with path.open("rb") as handle:  # a file may grow after stat: read one byte past the limit
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputLimitError(
            f"{what} {path} is over {max_bytes >> 20} MiB; it cannot be a real {what}"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputLimitError(
            f"{what} {path} is not UTF-8 text (byte {error.start}); pass the right file"
        ) from None


def load_yaml(text: str, *, what: str, max_values: int = MAX_YAML_VALUES) -> Any:
    """``yaml.safe_load(text)``, refusing documents whose aliases expand past ``max_values``.

    Anchors and aliases stay usable for what they are for (reusing a block);
    only the count of values after expansion is limited.

    Raises:
        yaml.YAMLError: invalid YAML (callers know the file and word it).
        InputLimitError: the aliases expand into more than ``max_values`` values.
    """
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is not None and _expanded_size(node, {}) > max_values:
        raise InputLimitError(
            f"{what} expands to over {max_values} values through YAML aliases (*name);"
            " write the values out"
        )
    return yaml.safe_load(text)


def load_plain_value(text: str, *, what: str) -> Any:
    """One YAML value a user typed (``true``, ``64``, ``[1, 2]``), as plain JSON-able data.

    Tags (``!!python/name:...``, ``!!binary``) and values JSON cannot hold
    (dates, bytes) are refused, since settings travel into ``run.json`` and profiles.

    Raises:
        InputLimitError: invalid YAML, or not plain data; the message names ``what``.
    """
    import yaml

    try:
        value = load_yaml(text, what=what)
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InputLimitError(f"{what}: {text!r} is not a YAML value ({problem})") from None
    if not _is_plain(value):
        raise InputLimitError(
            f"{what}: {text!r} is not plain data; give text, a number, true/false or a list"
        )
    return value


def _is_plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(_is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return value is None or isinstance(value, str | int | float | bool)


def _expanded_size(node: Any, sizes: dict[int, int]) -> int:
    """Values under ``node`` with every alias expanded, counted without expanding them."""
    import yaml

    if id(node) in sizes:  # an alias is the same node object: count it again, cheaply
        return sizes[id(node)]
    sizes[id(node)] = 1  # a recursive alias ends here instead of looping
    if isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    else:
        children = []
    size = 1 + sum(_expanded_size(child, sizes) for child in children)
    sizes[id(node)] = size
    return size

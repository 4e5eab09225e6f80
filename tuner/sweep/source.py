"""Read a sweep file (YAML or TOML) into plain data plus the line of every value.

Validation errors must point at a line of the user's file, so the reader keeps,
next to the parsed data, a map from each value's path (``("modes", 1,
"num_runs")``) to its 1-based line.  YAML gives exact lines through
``yaml.compose``; ``tomllib`` gives none, so TOML lines are found by searching
the text for the key (good enough to point at the right line in practice).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.limits import load_yaml, read_text_limited
from engines.errors import ConfigError

Key = tuple[str | int, ...]


class SweepFileError(ConfigError):
    """The sweep file is malformed; the message names the file, the line and the fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """A parsed sweep file: its data and where each value came from."""

    path: Path
    data: dict[str, Any]
    lines: dict[Key, int]

    def line(self, key: Key) -> int | None:
        """The line of ``key``, else of its closest parent that has one."""
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return None

    def error(self, key: Key, message: str) -> SweepFileError:
        """A one-line error ``file:line: message`` for the value at ``key``."""
        line = self.line(key)
        where = f"{self.path}:{line}" if line else str(self.path)
        return SweepFileError(f"{where}: {message}")


def read_source(path: str | Path) -> Source:
    """Parse ``path`` (``.yaml``/``.yml``/``.toml``).

    Raises:
        SweepFileError: the file is missing, unreadable, not valid YAML/TOML, or
            its top level is not a mapping.
    """
    path = Path(path)
    try:
        text = read_text_limited(path, what="sweep file")
    except OSError as error:
        raise SweepFileError(f"cannot read sweep file {path}: {error.strerror or error}") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data, lines = _read_yaml(path, text)
    elif suffix == ".toml":
        data, lines = _read_toml(path, text)
    else:
        raise SweepFileError(f"sweep file {path} must end in .yaml, .yml or .toml")
    if not isinstance(data, dict):
        raise SweepFileError(f"{path}:1: the sweep file must be a mapping of keys (models: ...)")
    return Source(path=path, data=data, lines=lines)


def _read_yaml(path: Path, text: str) -> tuple[Any, dict[Key, int]]:
    import yaml

    try:
        data = load_yaml(text, what=f"sweep file {path}")  # before the walk below expands aliases
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SweepFileError(f"{where}: invalid YAML ({problem}); fix the syntax") from None
    lines: dict[Key, int] = {}
    if node is not None:
        _walk_yaml(node, (), lines)
    return data, lines


def _walk_yaml(node: Any, key: Key, lines: dict[Key, int]) -> None:
    import yaml

    lines.setdefault(key, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*key, key_node.value)
            lines[child] = key_node.start_mark.line + 1  # point at the key, not its value
            _walk_yaml(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk_yaml(item, (*key, index), lines)


def _read_toml(path: Path, text: str) -> tuple[Any, dict[Key, int]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"line (\d+)", str(error))
        where = f"{path}:{match.group(1)}" if match else str(path)
        raise SweepFileError(f"{where}: invalid TOML ({error}); fix the syntax") from None
    lines: dict[Key, int] = {}
    _walk_toml(data, (), text.splitlines(), lines)
    return data, lines


def _walk_toml(
    value: Any, key: Key, text: list[str], lines: dict[Key, int], start: int = 1
) -> None:
    """Record lines of ``value``; keys are searched from line ``start`` (the table's header)."""
    if key and isinstance(key[-1], str):
        line = _toml_line(text, key, start)
        if line:
            lines[key] = line
    if isinstance(value, dict):
        for name, child in value.items():
            _walk_toml(child, (*key, name), text, lines, start)
    elif isinstance(value, list):
        headers = _toml_array_headers(text, key)
        for index, item in enumerate(value):
            item_start = start
            if index < len(headers):  # [[models]] tables: one header line per item
                lines[(*key, index)] = item_start = headers[index]
            _walk_toml(item, (*key, index), text, lines, item_start)


def _toml_line(text: list[str], key: Key, start: int) -> int | None:
    name = re.escape(str(key[-1]))
    header = ".".join(re.escape(str(k)) for k in key if isinstance(k, str))
    patterns = (rf"^\s*\[\[?\s*{header}\s*\]\]?\s*(#.*)?$", rf"^\s*\"?{name}\"?\s*=")
    for pattern in patterns:
        for number in range(start, len(text) + 1):
            if re.match(pattern, text[number - 1]):
                return number
    return None


def _toml_array_headers(text: list[str], key: Key) -> list[int]:
    header = ".".join(re.escape(str(k)) for k in key if isinstance(k, str))
    pattern = re.compile(rf"^\s*\[\[\s*{header}\s*\]\]")
    return [n for n, line in enumerate(text, start=1) if pattern.match(line)]

"""Backends by name, imported only when asked for.

Importing :mod:`engines` must never import vLLM (or even torch-heavy backend
modules): the table maps each name to the module and config/engine classes that
implement it, the way lm-evaluation-harness registers its models.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import types
import typing
from typing import Any, NamedTuple

from engines.base import Engine
from engines.errors import ConfigError


class Backend(NamedTuple):
    """Where a backend is implemented, and which of its settings is the batch size."""

    module: str
    config_class: str
    engine_class: str
    batch_field: str  # requests decoded together: a batch, or the scheduler's sequence cap


BACKENDS: dict[str, Backend] = {
    "transformers": Backend(
        "engines.transformers", "TransformersConfig", "TransformersEngine", "batch_size"
    ),
    "vllm": Backend("engines.vllm", "VLLMConfig", "VLLMEngine", "max_num_seqs"),
    "transformers_cb": Backend(
        "engines.transformers_cb",
        "TransformersCBConfig",
        "TransformersCBEngine",
        "max_requests_per_batch",
    ),
}


def backend_names() -> list[str]:
    return list(BACKENDS)


def batch_field(backend: str) -> str:
    """The setting of ``backend`` that is its batch size (``--batch-size`` sets it)."""
    return _lookup(backend).batch_field


def _lookup(backend: str) -> Backend:
    if backend not in BACKENDS:
        close = difflib.get_close_matches(backend, BACKENDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown backend {backend!r}{hint}; choose one of: {', '.join(BACKENDS)}"
        )
    return BACKENDS[backend]


def config_class(backend: str) -> type:
    """The config dataclass of ``backend`` (imports its module, not the library)."""
    entry = _lookup(backend)
    return getattr(importlib.import_module(entry.module), entry.config_class)


def make_config(backend: str, model: str, **settings: Any) -> Any:
    """Build and validate ``backend``'s config; unknown setting names are errors."""
    cls = config_class(backend)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(settings) - known - {"model"})
    if unknown:
        raise ConfigError(
            f"unknown setting(s) {', '.join(unknown)} for backend {backend!r};"
            f" known: {', '.join(sorted(known - {'model'}))}"
        )
    hints = typing.get_type_hints(cls)
    for name, value in settings.items():
        expected = _expected(value, hints.get(name))
        if expected:
            raise ConfigError(
                f"setting {name} of backend {backend!r} must be {expected}, got {value!r}"
            )
    return cls(model=model, **settings)


# the plain types config fields use, as the message names them
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               type(None): "null"}  # fmt: skip


def _expected(value: Any, hint: Any) -> str | None:
    """What ``value`` should have been for a field typed ``hint``; None when it fits.

    A config's ``__post_init__`` checks ranges; types come first, so that a YAML
    string such as ``1e9`` is refused by name instead of failing a comparison.
    """
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if not allowed or any(kind not in _TYPE_NAMES for kind in allowed):
        return None  # a richer type: the config checks it itself
    is_bool = isinstance(value, bool)
    fits = {bool: is_bool, int: isinstance(value, int) and not is_bool,
            float: isinstance(value, int | float) and not is_bool, str: isinstance(value, str),
            type(None): value is None}  # fmt: skip
    if any(fits[kind] for kind in allowed):
        return None
    return " or ".join(_TYPE_NAMES[kind] for kind in allowed)


def load_engine(backend: str, model: str, **settings: Any) -> Engine:
    """Load ``model`` on ``backend`` with backend ``settings`` (its config fields).

    Raises:
        ConfigError: unknown backend or invalid setting.
        BackendUnavailableError: the backend's library is not installed.
        ModelLoadError: the model cannot be found or loaded.
    """
    config = make_config(backend, model, **settings)
    entry = _lookup(backend)
    return getattr(importlib.import_module(entry.module), entry.engine_class)(config)

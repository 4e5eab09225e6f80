"""Backends by name, imported only when asked for.

Importing :mod:`engines` must never import vLLM (or even torch-heavy backend
modules): the table maps each name to the module and config/engine classes that
implement it, the way lm-evaluation-harness registers its models.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
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
    return cls(model=model, **settings)


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

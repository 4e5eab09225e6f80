"""Backends by name, imported only when asked for.

Importing :mod:`engines` must never import vLLM (or even torch-heavy backend
modules): the table maps each name to the module and config/engine classes that
implement it, the way lm-evaluation-harness registers its models.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any

from engines.base import Engine
from engines.errors import ConfigError

# name -> (module, config class, engine class)
BACKENDS: dict[str, tuple[str, str, str]] = {
    "transformers": ("engines.transformers", "TransformersConfig", "TransformersEngine"),
    "vllm": ("engines.vllm", "VLLMConfig", "VLLMEngine"),
    "transformers_cb": ("engines.transformers_cb", "TransformersCBConfig", "TransformersCBEngine"),
}


def backend_names() -> list[str]:
    return list(BACKENDS)


def _lookup(backend: str) -> tuple[str, str, str]:
    if backend not in BACKENDS:
        close = difflib.get_close_matches(backend, BACKENDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown backend {backend!r}{hint}; choose one of: {', '.join(BACKENDS)}"
        )
    return BACKENDS[backend]


def config_class(backend: str) -> type:
    """The config dataclass of ``backend`` (imports its module, not the library)."""
    module, config_name, _ = _lookup(backend)
    return getattr(importlib.import_module(module), config_name)


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
    module, _, engine_name = _lookup(backend)
    return getattr(importlib.import_module(module), engine_name)(config)

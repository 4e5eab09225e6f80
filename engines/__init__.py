"""Text generation over transformers and vLLM, behind one small interface.

Knows nothing about math, datasets or tuning.  Backends load lazily::

    from engines import GenerationRequest, load_engine

    with load_engine("transformers", "synthetic:tiny", batch_size=8) as engine:
        [completions] = engine.generate([GenerationRequest(prompt="1 + 1 =")])

A model is a folder, a hub id, ``synthetic:NAME``, a ``.gguf`` file or the short
name ``smollm2-135m-instruct``; :mod:`engines.models` says which folder each loads.
"""

from engines.base import (
    GREEDY,
    BatchOutput,
    Completion,
    Decoding,
    Engine,
    EngineStats,
    FinishReason,
    GenerationRequest,
)
from engines.errors import (
    BackendUnavailableError,
    ConfigError,
    EngineOutOfMemoryError,
    InfertuneError,
    ModelLoadError,
)
from engines.registry import backend_names, config_class, load_engine, make_config

__all__ = [
    "GREEDY",
    "BackendUnavailableError",
    "BatchOutput",
    "Completion",
    "ConfigError",
    "Decoding",
    "Engine",
    "EngineOutOfMemoryError",
    "EngineStats",
    "FinishReason",
    "GenerationRequest",
    "InfertuneError",
    "ModelLoadError",
    "backend_names",
    "config_class",
    "load_engine",
    "make_config",
]

"""What the two transformers backends share: device, dtype, loading and the engine shell.

:class:`HFEngine` loads a tokenizer and model onto one device and turns token
rows into :class:`~engines.base.Completion` records; the static-batching
(:mod:`engines.transformers`) and continuous-batching
(:mod:`engines.transformers_cb`) engines add only how they generate.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from typing import Protocol

import torch

from engines.base import Completion, Engine
from engines.errors import ModelLoadError
from engines.models import resolve_model
from engines.tokens import eos_token_ids, finish

DTYPES = ("auto", "float32", "bfloat16", "float16")


class HFModelConfig(Protocol):
    """The settings :func:`load_model` reads (both backends' configs have them)."""

    model: str
    dtype: str
    attn_implementation: str
    device: str
    trust_remote_code: bool


class HFEngine(Engine):
    """An engine over one transformers model: load, report settings, finish rows, close."""

    def __init__(self, config: HFModelConfig) -> None:
        super().__init__()
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self._tokenizer, self.model = load_model(config, self.device, self.dtype)
        self.eos_ids = eos_token_ids(
            self._tokenizer, self.model.config, self.model.generation_config
        )

    @property
    def tokenizer(self):  # noqa: ANN201
        return self._tokenizer

    def settings(self) -> dict[str, object]:
        return asdict(self.config) | {"resolved_dtype": str(self.dtype).removeprefix("torch.")}

    def _finish(self, request, prompt_ids, rows) -> list[Completion]:  # noqa: ANN001
        completions = [
            finish(self._tokenizer, request, row, len(prompt_ids), self.eos_ids) for row in rows
        ]
        self.stats.prompt_tokens += len(prompt_ids)
        self.stats.completion_tokens += sum(c.completion_tokens for c in completions)
        return completions

    def close(self) -> None:
        self.model = None
        free_memory(self.device)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; any other name is taken as is."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``"auto"`` is bfloat16 on CUDA and float32 elsewhere; other names are torch dtypes."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def free_memory(device: torch.device) -> None:
    """Collect garbage and, on CUDA, return cached blocks, after a model is dropped."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def load_model(config: HFModelConfig, device: torch.device, dtype: torch.dtype):  # noqa: ANN201
    """Load ``config.model``'s tokenizer (left padding) and model, in eval mode on ``device``.

    Raises:
        ModelLoadError: the model cannot be found or read.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(config.model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, padding_side="left", trust_remote_code=config.trust_remote_code
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForCausalLM.from_pretrained(
                path,
                dtype=dtype,
                attn_implementation=config.attn_implementation,
                trust_remote_code=config.trust_remote_code,
            )
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"cannot load model {config.model!r}: {str(error).splitlines()[0]}"
            " (give a local directory with config.json, a .gguf file, a cached hub id,"
            " or synthetic:tiny)"
        ) from error
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model.to(device).eval()

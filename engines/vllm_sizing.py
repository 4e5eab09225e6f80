"""How long a sequence vLLM must hold, and how much KV cache that takes on CPU.

vLLM takes ``max_model_len`` from the model (8,192 for SmolLM2, 32,768 for
Qwen2.5) and refuses to start when the KV cache cannot hold one sequence that
long.  On CPU the cache is a fixed size, so an unsized engine either wastes
memory or does not start.  The work decides instead: callers that know their
prompts size the engine with :func:`with_model_len` before it loads (the
tuner's trial worker, so tune and speedup, and ``eval --backend vllm``);
otherwise :data:`DEFAULT_MAX_MODEL_LEN` (capped at the model's own limit)
applies.  On CPU the cache is sized from free memory but never below what one
such sequence needs; on GPU vLLM sizes it from ``gpu_memory_utilization``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engines.base import GenerationRequest

# Long enough for a math prompt with a few-shot preamble plus a long solution;
# far shorter than the contexts models advertise, whose KV cache may not fit.
DEFAULT_MAX_MODEL_LEN = 4096
# The share of available memory an unsized CPU KV cache may take, and its cap:
# a benchmark shares the machine with its own process and the model weights.
CPU_KV_CACHE_SHARE = 0.25
CPU_KV_CACHE_CAP_BYTES = 2 << 30
# Room for vLLM's block rounding above the exact bytes of one sequence.
_MARGIN = 1.25
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def needed_model_len(prompt_tokens: Iterable[int], max_new_tokens: int) -> int:
    """The ``max_model_len`` a workload needs: its longest prompt plus the new tokens.

    ``prompt_tokens`` holds each prompt's length in tokens.
    """
    longest = max(prompt_tokens, default=0)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    return longest + max_new_tokens


def model_len_for(model: str, requests: Sequence[GenerationRequest]) -> int:
    """:func:`needed_model_len` of ``requests``, their prompts encoded as the engine will
    encode them (chat template included), with ``model``'s tokenizer.

    Raises:
        ModelLoadError: the model's tokenizer cannot be loaded.
    """
    from transformers import AutoTokenizer

    from engines.errors import ModelLoadError
    from engines.models import resolve_model
    from engines.tokens import encode_prompt

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_model(model))
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"cannot load the tokenizer of model {model!r}: {str(error).splitlines()[0]}"
        ) from None
    lengths = (len(encode_prompt(tokenizer, r)) for r in requests)
    return needed_model_len(lengths, max(r.max_tokens for r in requests))


def with_model_len(
    settings: Mapping[str, Any], model: str, requests: Sequence[GenerationRequest]
) -> dict[str, Any]:
    """vLLM ``settings`` with ``max_model_len`` sized for ``requests``.

    vLLM allocates its KV cache when it loads, so the length must be known
    then, not at the first ``generate``; an explicit ``max_model_len`` wins.
    """
    if settings.get("max_model_len") is not None or not requests:
        return dict(settings)
    return dict(settings) | {"max_model_len": model_len_for(model, requests)}


def model_len_limit(hf_config) -> int | None:  # noqa: ANN001 - a transformers config
    """The longest sequence the model's config allows, when it says."""
    return getattr(hf_config, "max_position_embeddings", None)


def default_model_len(hf_config) -> int:  # noqa: ANN001
    """:data:`DEFAULT_MAX_MODEL_LEN`, or the model's own limit when that is shorter."""
    limit = model_len_limit(hf_config)
    return min(DEFAULT_MAX_MODEL_LEN, limit) if limit else DEFAULT_MAX_MODEL_LEN


def kv_bytes_per_token(hf_config, dtype: str) -> int:  # noqa: ANN001
    """KV-cache bytes one token takes: keys and values of every layer's KV heads."""
    text = getattr(hf_config, "text_config", None) or hf_config
    heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2 * text.num_hidden_layers * heads * head_dim * _DTYPE_BYTES.get(dtype, 4)


def cpu_kv_cache_bytes(
    hf_config,  # noqa: ANN001
    dtype: str,
    max_model_len: int,
    available_bytes: int | None = None,
) -> int:
    """A KV-cache size for vLLM on CPU: a share of available memory, capped, yet
    always enough for one ``max_model_len`` sequence (so the engine starts).

    ``available_bytes`` defaults to what psutil reports as available now.
    """
    if available_bytes is None:
        import psutil

        available_bytes = psutil.virtual_memory().available
    share = min(int(available_bytes * CPU_KV_CACHE_SHARE), CPU_KV_CACHE_CAP_BYTES)
    one_sequence = int(kv_bytes_per_token(hf_config, dtype) * max_model_len * _MARGIN)
    return max(share, one_sequence)

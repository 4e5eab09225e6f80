"""How long a sequence vLLM must hold and how big its CPU KV cache is, from real configs."""

from __future__ import annotations

import pytest
from transformers import LlamaConfig, Qwen2Config

from engines.vllm_sizing import (
    CPU_KV_CACHE_CAP_BYTES,
    DEFAULT_MAX_MODEL_LEN,
    cpu_kv_cache_bytes,
    default_model_len,
    kv_bytes_per_token,
    needed_model_len,
)

# SmolLM2-135M's shape: 30 layers, 3 KV heads of 64.
SMOLLM2 = LlamaConfig(
    hidden_size=576,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    head_dim=64,
    max_position_embeddings=8192,
)


def test_needed_length_is_longest_prompt_plus_new_tokens() -> None:
    assert needed_model_len([120, 37, 301], 256) == 557
    assert needed_model_len([], 16) == 16
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1"):
        needed_model_len([10], 0)


def test_default_length_never_exceeds_the_models_own_limit() -> None:
    assert default_model_len(SMOLLM2) == DEFAULT_MAX_MODEL_LEN < 8192
    assert default_model_len(Qwen2Config(max_position_embeddings=512)) == 512


def test_kv_bytes_per_token_counts_keys_and_values_of_every_layer() -> None:
    # The 0.35 GiB vLLM asked for at 8,192 tokens in float32.
    assert kv_bytes_per_token(SMOLLM2, "float32") == 2 * 30 * 3 * 64 * 4 == 46080
    assert kv_bytes_per_token(SMOLLM2, "bfloat16") == 46080 // 2
    qwen = Qwen2Config(hidden_size=512, num_attention_heads=8, num_key_value_heads=2)
    assert kv_bytes_per_token(qwen, "float32") == 2 * qwen.num_hidden_layers * 2 * 64 * 4


def test_cpu_cache_is_a_capped_share_of_free_memory_but_holds_one_sequence() -> None:
    gib = 1 << 30
    assert cpu_kv_cache_bytes(SMOLLM2, "float32", 4096, available_bytes=2 * gib) == gib // 2
    assert cpu_kv_cache_bytes(SMOLLM2, "float32", 4096, available_bytes=100 * gib) == (
        CPU_KV_CACHE_CAP_BYTES
    )
    # Little free memory: still enough for one 8,192-token sequence, or vLLM refuses to start.
    scarce = cpu_kv_cache_bytes(SMOLLM2, "float32", 8192, available_bytes=gib // 4)
    assert scarce >= 46080 * 8192
    assert cpu_kv_cache_bytes(SMOLLM2, "float32", 1024) > 0  # psutil's reading by default

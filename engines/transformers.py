"""Static batching over Hugging Face transformers.

Requests are (optionally) sorted by prompt length, cut into batches of
``batch_size`` requests, left-padded, and generated with ``model.generate``;
completions are sliced at the padded input length, never by matching prompt
text.  An out-of-memory batch is split in half and retried.  With ``n > 1``
samples per request the prompt is run once and its KV cache copied ``n`` ways
(what vLLM's prefix sharing does), rather than ``generate`` prefilling every
sample's copy of the prompt.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from engines.base import BatchOutput, Completion, GenerationRequest
from engines.errors import ConfigError, EngineOutOfMemoryError, is_out_of_memory
from engines.hf_base import DTYPES, HFEngine, free_memory
from engines.stopping import STRATEGIES, RowLimit, RowStopper
from engines.tokens import encode_prompt

logger = logging.getLogger(__name__)

OOM_ERRORS: tuple[type[BaseException], ...] = (torch.OutOfMemoryError, MemoryError)


@dataclass(frozen=True, slots=True, kw_only=True)
class TransformersConfig:
    """Settings of the transformers backend.

    ``batch_size`` counts requests per ``generate`` call (with ``n > 1`` a batch
    holds ``batch_size * n`` rows).  ``dtype="auto"`` is float32 on CPU, where
    bfloat16 is slow and not batch-invariant, and bfloat16 on GPU.
    """

    model: str
    batch_size: int = 8
    stopping: str = "per_row"
    sort_by_length: bool = True
    dtype: str = "auto"
    attn_implementation: str = "sdpa"
    device: str = "auto"
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.stopping not in STRATEGIES:
            raise ConfigError(
                f"stopping must be one of {', '.join(STRATEGIES)}, got {self.stopping!r}"
            )
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


class TransformersEngine(HFEngine):
    name = "transformers"

    def __init__(self, config: TransformersConfig) -> None:
        super().__init__(config)
        # EOS is handled per row by RowStopper (it must be ignored for replayed
        # lengths), so generate() must not add its own EOS criterion from the
        # model's defaults.
        self.model.generation_config.eos_token_id = None
        # Sharing a prefill needs a forward that can skip the full logits and a
        # cache that can be copied per row; models without them (some remote
        # code) prefill each sample instead.
        parameters = inspect.signature(self.model.forward).parameters
        self.shares_prefill = "logits_to_keep" in parameters and "position_ids" in parameters

    def iter_batches(self, requests: Sequence[GenerationRequest]) -> Iterator[BatchOutput]:
        self.stats.num_generate_calls += 1
        self.stats.num_requests += len(requests)
        prompts = [encode_prompt(self._tokenizer, r) for r in requests]
        order = list(range(len(requests)))
        if self.config.sort_by_length:
            # Longest first: similar lengths share a batch (less padding), and
            # an out-of-memory batch shows up at once rather than at the end.
            order.sort(key=lambda i: -len(prompts[i]))
        size = self.config.batch_size
        for start in range(0, len(order), size):
            indices = order[start : start + size]
            outputs = self._generate_split([(requests[i], prompts[i]) for i in indices])
            yield BatchOutput(tuple(indices), tuple(outputs))

    def _generate_split(
        self, batch: list[tuple[GenerationRequest, list[int]]]
    ) -> list[tuple[Completion, ...]]:
        try:
            return self._generate(batch)
        except (*OOM_ERRORS, RuntimeError) as error:
            if not is_out_of_memory(error):
                raise
            if len(batch) == 1:
                raise EngineOutOfMemoryError(
                    f"out of memory generating a single request ({len(batch[0][1])} prompt"
                    " tokens): lower max_new_tokens or use a smaller model or dtype"
                ) from error
            self.stats.num_oom_splits += 1
            free_memory(self.device)
            half = len(batch) // 2
            logger.warning(
                "out of memory at batch %d; retrying as %d + %d",
                len(batch),
                half,
                len(batch) - half,
            )
            return self._generate_split(batch[:half]) + self._generate_split(batch[half:])

    @torch.inference_mode()
    def _generate(
        self, batch: list[tuple[GenerationRequest, list[int]]]
    ) -> list[tuple[Completion, ...]]:
        requests = [r for r, _ in batch]
        decoding = requests[0].decoding
        if any(r.decoding != decoding for r in requests):
            raise ConfigError("all requests of one generate() call must share decoding settings")
        input_ids, attention_mask = self._pad([ids for _, ids in batch])
        rows = [_row_limit(r) for r in requests for _ in range(decoding.n)]
        stopper = RowStopper(
            self._tokenizer, rows, input_ids.shape[1], self.eos_ids, self.config.stopping
        )
        shared = {}
        if decoding.n > 1 and input_ids.shape[1] > 1 and self.shares_prefill:
            shared["past_key_values"] = self._shared_prefill(input_ids, attention_mask, decoding.n)
            input_ids = input_ids.repeat_interleave(decoding.n, dim=0)
            attention_mask = attention_mask.repeat_interleave(decoding.n, dim=0)
        if decoding.seed is not None:
            torch.manual_seed(decoding.seed)
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            generation_config=self._generation_config(requests, expanded=bool(shared)),
            stopping_criteria=[stopper],
            **shared,
        )
        self.stats.num_batches += 1
        self.stats.num_decode_steps += stopper.steps
        generated = output[:, input_ids.shape[1] :].tolist()
        return [
            tuple(self._finish(request, ids, generated[k * decoding.n : (k + 1) * decoding.n]))
            for k, (request, ids) in enumerate(batch)
        ]

    def _shared_prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n: int):  # noqa: ANN202
        """The KV cache of every prompt but its last token, each row repeated ``n`` times.

        ``generate`` then computes only the last prompt token per sample: with
        ``num_return_sequences`` it would prefill the whole prompt ``n`` times,
        which on a compute-bound device costs as much as decoding.
        """
        prefix_ids, prefix_mask = input_ids[:, :-1], attention_mask[:, :-1]
        # The positions generate() gives left-padded rows, so the cached keys
        # equal the ones it would have computed itself.
        positions = (prefix_mask.cumsum(-1) - 1).masked_fill(prefix_mask == 0, 0)
        cache = self.model(
            input_ids=prefix_ids,
            attention_mask=prefix_mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,  # only the cache is wanted; full logits are batch x length x vocab
        ).past_key_values
        cache.batch_repeat_interleave(n)
        return cache

    def _pad(self, prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        # Left padding keeps every prompt's last token at the same position,
        # which is what batched decoding needs; the mask hides the pads.
        width = max(len(p) for p in prompts)
        pad = self._tokenizer.pad_token_id
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _generation_config(self, requests: list[GenerationRequest], *, expanded: bool = False):  # noqa: ANN202
        from transformers import GenerationConfig

        decoding = requests[0].decoding
        # Every knob is explicit: unset ones would be filled from the model's
        # generation_config (a repetition penalty, top_k=50, ...).
        settings: dict[str, object] = {
            "max_new_tokens": max(r.max_tokens for r in requests),
            # Rows already repeated for a shared prefill are one sequence each.
            "num_return_sequences": 1 if expanded else decoding.n,
            "pad_token_id": self._tokenizer.pad_token_id,
            "repetition_penalty": 1.0,
            "do_sample": not decoding.is_greedy,
        }
        if not decoding.is_greedy:
            settings |= {"temperature": decoding.temperature, "top_p": decoding.top_p, "top_k": 0}
        return GenerationConfig(**settings)


def _row_limit(request: GenerationRequest) -> RowLimit:
    if request.target_output_tokens is not None:  # a replayed length ignores EOS and stops
        return RowLimit((), request.target_output_tokens, stops_on_eos=False)
    return RowLimit(request.stop, request.max_new_tokens, stops_on_eos=True)

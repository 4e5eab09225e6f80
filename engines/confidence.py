"""How confident a model's next-token choices are, and how that shows in batch parity.

Token parity between a batched configuration and batch 1 is only meaningful
when the model's greedy choices are about as decisive as a real model's: near
tied logits flip under any change of kernel or batch shape.  These functions
measure that on real prompts, so synthetic models can be shaped to match::

    logits = greedy_step_logits("smollm2-135m-instruct", requests)
    confidence(logits)                      # mean top-1 probability, share of near ties
    batch_agreement("synthetic:small", requests, dtype="bfloat16")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engines.base import GenerationRequest
from engines.registry import load_engine

# A top-1 to top-2 logit margin below this counts as a near tie: bfloat16
# rounding of a logit of magnitude ~10 is about 0.03-0.06.
NEAR_TIE_MARGIN = 0.1


@dataclass(frozen=True, slots=True)
class Confidence:
    """Next-token statistics over greedy decode steps."""

    num_steps: int
    mean_top1_probability: float
    share_near_ties: float  # steps whose top-1 minus top-2 logit is below NEAR_TIE_MARGIN


@dataclass(frozen=True, slots=True)
class Agreement:
    """How many rows a configuration decodes token-for-token as batch 1 does."""

    num_rows: int
    num_identical: int

    @property
    def share(self) -> float:
        return self.num_identical / self.num_rows if self.num_rows else 1.0


@torch.inference_mode()
def greedy_step_logits(
    model: str, requests: Sequence[GenerationRequest], *, batch_size: int = 16
) -> torch.Tensor:
    """The fp32 logits of every greedy decode step, one row per step, up to each row's EOS.

    Requests are decoded greedily for their ``max_new_tokens`` with the
    transformers backend; steps after a row's first EOS are dropped.
    """
    from engines.tokens import encode_prompt

    with load_engine("transformers", model, batch_size=batch_size, dtype="float32") as engine:
        tokenizer, hf_model = engine.tokenizer, engine.model
        steps: list[torch.Tensor] = []
        for start in range(0, len(requests), batch_size):
            batch = requests[start : start + batch_size]
            prompts = [encode_prompt(tokenizer, r) for r in batch]
            input_ids, mask = engine._pad(prompts)
            output = hf_model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=max(r.max_new_tokens for r in batch),
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                output_logits=True,
                return_dict_in_generate=True,
            )
            generated = output.sequences[:, input_ids.shape[1] :]
            logits = torch.stack(output.logits, dim=1).float()  # batch x steps x vocab
            for row, request in enumerate(batch):
                steps.append(
                    logits[row, : _steps_until_eos(generated[row], engine.eos_ids, request)]
                )
    return torch.cat(steps)


def _steps_until_eos(tokens: torch.Tensor, eos_ids, request: GenerationRequest) -> int:  # noqa: ANN001
    for position, token in enumerate(tokens.tolist()[: request.max_new_tokens]):
        if token in eos_ids:
            return position + 1
    return min(len(tokens), request.max_new_tokens)


def confidence(logits: torch.Tensor, scale: float = 1.0) -> Confidence:
    """Statistics of ``logits`` (steps x vocab) multiplied by ``scale``.

    Scaling the logits is what scaling a model's output layer does; greedy
    choices do not change with it, so one set of logits serves every scale.
    """
    scaled = logits * scale
    top = scaled.topk(2, dim=-1).values
    probability = (top[:, 0] - scaled.logsumexp(dim=-1)).exp()
    return Confidence(
        num_steps=logits.shape[0],
        mean_top1_probability=float(probability.mean()),
        share_near_ties=float(((top[:, 0] - top[:, 1]) < NEAR_TIE_MARGIN).float().mean()),
    )


def matching_scale(
    logits: torch.Tensor, target: Confidence, low: float = 0.05, high: float = 50.0
) -> float:
    """The output scale at which ``logits`` reach ``target``'s mean top-1 probability.

    The mean top-1 probability grows with the scale, so bisection (on a log
    scale) finds it.
    """
    for _ in range(60):
        middle = (low * high) ** 0.5
        if confidence(logits, middle).mean_top1_probability < target.mean_top1_probability:
            low = middle
        else:
            high = middle
    return (low * high) ** 0.5


def batch_agreement(
    model: str,
    requests: Sequence[GenerationRequest],
    *,
    dtype: str = "bfloat16",
    batch_size: int = 16,
) -> Agreement:
    """Rows that batch ``batch_size`` decodes exactly as batch 1 does, in ``dtype``."""
    rows = []
    for size in (1, batch_size):
        with load_engine("transformers", model, batch_size=size, dtype=dtype) as engine:
            rows.append([c[0].token_ids for c in engine.generate(requests)])
    same = sum(a == b for a, b in zip(*rows, strict=True))
    return Agreement(num_rows=len(requests), num_identical=same)

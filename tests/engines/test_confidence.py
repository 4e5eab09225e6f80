"""Next-token confidence statistics, and the output shaping of synthetic models."""

from __future__ import annotations

import pytest
import torch

from engines import GenerationRequest, synthetic
from engines.confidence import (
    NEAR_TIE_MARGIN,
    Confidence,
    batch_agreement,
    confidence,
    greedy_step_logits,
    matching_scale,
)
from tests.engines.prompts import PROMPTS


def test_statistics_of_known_logits() -> None:
    logits = torch.tensor([[2.0, 2.0 - NEAR_TIE_MARGIN / 2, -5.0], [0.0, 0.0, 0.0]])
    stats = confidence(logits)
    assert stats.num_steps == 2 and stats.share_near_ties == 1.0
    assert stats.mean_top1_probability == pytest.approx(
        (torch.softmax(logits[0], -1)[0].item() + 1 / 3) / 2
    )
    sharp = confidence(torch.tensor([[10.0, 0.0, 0.0]]))
    assert sharp.share_near_ties == 0.0 and sharp.mean_top1_probability > 0.99


def test_matching_scale_reaches_the_target_probability() -> None:
    logits = torch.randn(200, 50, generator=torch.Generator().manual_seed(0))
    target = Confidence(num_steps=1, mean_top1_probability=0.65, share_near_ties=0.0)
    scale = matching_scale(logits, target)
    assert scale > 1
    assert confidence(logits, scale).mean_top1_probability == pytest.approx(0.65, abs=1e-4)


def test_synthetic_models_are_shaped_to_a_fixed_logit_spread() -> None:
    for name, spec in synthetic.SPECS.items():
        spread = spec.output_scale * spec.initializer_range * spec.hidden_size**0.5
        assert spread == pytest.approx(spec.target_logit_std), name
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(synthetic.resolve_model("synthetic:tiny"))
    expected = synthetic.SPECS["tiny"].output_scale
    assert torch.allclose(
        model.model.norm.weight, torch.full_like(model.model.norm.weight, expected)
    )


def test_tiny_synthetic_model_is_decisive_and_batch_invariant_in_float32() -> None:
    requests = [GenerationRequest(prompt=p, max_new_tokens=8) for p in PROMPTS[:6]]
    stats = confidence(greedy_step_logits("synthetic:tiny", requests, batch_size=3))
    # Unshaped, its top-1 probability was 0.006 with 29% near ties (flat random logits).
    assert stats.mean_top1_probability > 0.3 and stats.share_near_ties < 0.15
    agreement = batch_agreement("synthetic:tiny", requests, dtype="float32", batch_size=3)
    assert agreement.num_identical == agreement.num_rows == 6 and agreement.share == 1.0

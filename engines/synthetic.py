"""Random-weight models of real architectures, built locally: the offline default.

``synthetic:NAME`` resolves to a directory holding a Qwen2 causal LM with random
weights and a byte-level BPE tokenizer trained here on a built-in corpus.  Both
are deterministic from a seed and cached on disk, so every process (and both
backends) loads the very same model.  Random weights never answer correctly and
rarely emit EOS: benchmarks replay output lengths instead
(``GenerationRequest.target_output_tokens``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from engines.errors import ModelLoadError

PREFIX = "synthetic:"
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Qwen's chat format, so chat prompts look like the real thing.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SyntheticSpec:
    """Shape of a synthetic Qwen2 model; ``vocab_size`` is the model's output size."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int = 2048
    tokenizer_vocab_size: int = 2048
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    # Spread of the random weights.  How decisive logits are is the output
    # scale's job (below); this sets how much the layers amplify rounding
    # differences between kernels, hence batch parity in bfloat16.
    initializer_range: float = 0.1
    # Random logits are flat (SmolLM2-135M's greedy top-1 probability on gsm8k
    # is 0.65, synthetic:small's was 0.12), so batch parity measured near-ties.
    # The final norm is scaled so logits have this spread (std of a logit when
    # hidden states have unit RMS): measured to give real-model confidence on
    # tiny and small (docs/results/2026-12-03-cpu-confidence.json).
    target_logit_std: float = 6.8
    torch_dtype: str = "float32"
    seed: int = 0

    @property
    def output_scale(self) -> float:
        """Factor on the final norm weight that gives logits ``target_logit_std``."""
        return self.target_logit_std / (self.initializer_range * self.hidden_size**0.5)


SPECS: dict[str, SyntheticSpec] = {
    # head_dim 32: vLLM's CPU attention has no kernel for head_dim 16.
    "tiny": SyntheticSpec(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=128,
    ),
    # A narrower init than tiny's: with 0.1 the random layers amplify bfloat16
    # rounding, and batch-16 rows matched batch 1 on 22% of gsm8k prompts where
    # SmolLM2-135M matches on 62%; 0.035 gives 66% (0.02: 78%, 0.05: 44%).
    "small": SyntheticSpec(
        hidden_size=512,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=2,
        intermediate_size=1408,
        initializer_range=0.035,
    ),
    # The real Qwen2.5-1.5B shape, full vocabulary included: the output layer
    # costs what it really costs.  bf16 on disk (3 GB) for GPU machines.
    "qwen2.5-1.5b": SyntheticSpec(
        hidden_size=1536,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        intermediate_size=8960,
        vocab_size=151936,
        max_position_embeddings=32768,
        tie_word_embeddings=True,
        initializer_range=0.02,
        torch_dtype="bfloat16",
    ),
}


def is_synthetic(model: str) -> bool:
    return model.startswith(PREFIX)


def cache_root() -> Path:
    """Where synthetic models live: ``$INFERTUNE_CACHE`` or ``~/.cache/infertune``."""
    base = os.environ.get("INFERTUNE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "infertune"
    )
    return Path(base) / "synthetic"


def spec_for(model: str) -> SyntheticSpec:
    name = model.removeprefix(PREFIX)
    if name not in SPECS:
        raise ModelLoadError(
            f"unknown synthetic model {model!r}; choose one of: "
            + ", ".join(PREFIX + n for n in SPECS)
        )
    return SPECS[name]


def resolve_model(model: str) -> str:
    """Return a loadable path or hub id for ``model``, building synthetic ones on first use."""
    if not is_synthetic(model):
        return model
    spec = spec_for(model)
    digest = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:12]
    target = cache_root() / f"{model.removeprefix(PREFIX)}-{digest}"
    if not (target / "config.json").exists():
        _build(spec, target)
    return str(target)


def _build(spec: SyntheticSpec, target: Path) -> None:
    # Build in a sibling temp dir and rename: a crash or a concurrent builder
    # never leaves a half-written model where loaders look.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        tokenizer = build_tokenizer(spec)
        tokenizer.save_pretrained(staging)
        _build_model(spec, tokenizer).save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").exists():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_model(spec: SyntheticSpec, tokenizer):  # noqa: ANN202 - transformers model
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        intermediate_size=spec.intermediate_size,
        vocab_size=spec.vocab_size,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=spec.tie_word_embeddings,
        initializer_range=spec.initializer_range,
        rope_theta=1_000_000.0,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
        dtype=spec.torch_dtype,
    )
    torch.manual_seed(spec.seed)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        # The final norm, not the output layer: with tied embeddings the output
        # layer is the input embedding too.  Scaling logits keeps greedy choices.
        model.model.norm.weight.mul_(spec.output_scale)
    model = model.to(getattr(torch, spec.torch_dtype))
    # Clear the generation defaults so nothing (repetition penalty, sampling)
    # rides along: decoding settings come from the request alone.
    model.generation_config.bos_token_id = eos
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = eos
    return model


def build_tokenizer(spec: SyntheticSpec):  # noqa: ANN201 - PreTrainedTokenizerFast
    """Train a byte-level BPE tokenizer on the built-in corpus (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.tokenizer_vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    _pad_vocab(tok, spec.vocab_size)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=spec.max_position_embeddings,
    )


def _pad_vocab(tok, vocab_size: int) -> None:  # noqa: ANN001
    # A model whose output layer is larger than the trained vocabulary (the
    # 1.5B shape) emits ids the tokenizer never learned.  Give each one a plain
    # token so every id decodes to text on both backends.
    missing = vocab_size - tok.get_vocab_size()
    if missing > 0:
        tok.add_tokens([f"<x{i}>" for i in range(missing)])


def _corpus() -> list[str]:
    """Text resembling math word problems and step-by-step solutions."""
    names = ["Ann", "Ben", "Carla", "Dev", "Eve", "Farid", "Gia", "Hugo", "Ines", "Jo"]
    things = ["apples", "books", "marbles", "dollars", "eggs", "pens", "cookies", "cards"]
    lines: list[str] = []
    for i in range(3000):
        a, b = 3 + (i * 7) % 97, 2 + (i * 13) % 89
        who, what = names[i % len(names)], things[i % len(things)]
        lines.append(
            f"{who} has {a} {what} and buys {b} more. How many {what} does {who} have now? "
            f"Let's think step by step. {who} starts with {a} {what}. "
            f"Then {a} + {b} = {a + b}. So the answer is \\boxed{{{a + b}}}.\n"
            f"#### {a + b}\nIf each costs ${b}.50, the total is {a} * {b}.5 = {a * b + a / 2}; "
            f"that is {(a * 100) // (a + b)}% of the budget. The answer is {a * b}."
        )
    return lines

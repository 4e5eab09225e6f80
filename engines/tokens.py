"""Prompt encoding and completion finishing, shared by every backend.

Both backends tokenise prompts here (vLLM receives token ids), and both cut
generated tokens into a :class:`Completion` with the same function, so the
meaning of EOS, stop strings and length limits cannot drift between them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from engines.base import Completion, FinishReason, GenerationRequest


def encode_prompt(tokenizer, request: GenerationRequest) -> list[int]:  # noqa: ANN001
    """Token ids of a request's prompt; chat messages go through the chat template."""
    if request.messages is not None:
        if not getattr(tokenizer, "chat_template", None):
            from engines.errors import ConfigError

            raise ConfigError(
                "chat messages need a tokenizer with a chat template; send a plain prompt instead"
            )
        text = tokenizer.apply_chat_template(
            list(request.messages), tokenize=False, add_generation_prompt=True
        )
        # The template already holds every special token the model expects.
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(request.prompt)["input_ids"]


def load_tokenizer(model: str):  # noqa: ANN201 - a transformers tokenizer
    """``model``'s tokenizer from its resolved folder, without loading any weights.

    Raises:
        ModelLoadError: the model id or path does not resolve.
    """
    from transformers import AutoTokenizer

    from engines.errors import ModelLoadError
    from engines.models import resolve_model

    try:
        return AutoTokenizer.from_pretrained(resolve_model(model))
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"cannot load the tokenizer of model {model!r}: {str(error).splitlines()[0]}"
            " (give a local directory, a .gguf file, a cached hub id, or synthetic:tiny)"
        ) from None


def eos_token_ids(tokenizer, *configs) -> frozenset[int]:  # noqa: ANN001
    """Every id that ends a sequence: the tokenizer's EOS and each config's ``eos_token_id``.

    Pass the model config and the generation config: instruct models often list
    extra end-of-turn ids (a list) only in ``generation_config.json``.
    """
    ids: set[int] = set()
    values = [tokenizer.eos_token_id, *(getattr(c, "eos_token_id", None) for c in configs)]
    for value in values:
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(value)
    return frozenset(ids)


def generation_config(path: str):  # noqa: ANN201 - transformers GenerationConfig or None
    """The generation config saved with the model at ``path``, or None when it has none."""
    from transformers import GenerationConfig

    try:
        # local_files_only: a cached hub id resolves offline, and nothing waits on a network.
        return GenerationConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError):  # no generation_config.json: the model config decides
        return None


def finish(
    tokenizer,  # noqa: ANN001
    request: GenerationRequest,
    generated: Sequence[int],
    prompt_tokens: int,
    eos_ids: Collection[int],
) -> Completion:
    """Cut raw generated tokens where the request says generation ends.

    Order of precedence: a replayed length takes exactly that many tokens;
    otherwise the first EOS, then the earliest stop string before it, then
    ``max_new_tokens``.  ``completion_tokens`` counts the tokens generation spent,
    EOS and the tokens that completed a stop string included.
    """
    tokens = list(generated[: request.max_tokens])
    if request.target_output_tokens is not None:
        return _completion(tokenizer, tokens, tokens, prompt_tokens, "length")
    reason: FinishReason = "length"
    spent = tokens
    for position, token in enumerate(tokens):
        if token in eos_ids:
            tokens, spent, reason = tokens[:position], tokens[: position + 1], "eos"
            break
    text = decode(tokenizer, tokens)
    cut = first_stop(text, request.stop)
    if cut is None:
        return Completion(text, prompt_tokens, len(spent), reason, tuple(tokens))
    used = _tokens_until(tokenizer, tokens, request.stop)
    return Completion(text[:cut], prompt_tokens, used, "stop", tuple(tokens[:used]))


def _completion(tokenizer, tokens, spent, prompt_tokens, reason) -> Completion:  # noqa: ANN001
    return Completion(decode(tokenizer, tokens), prompt_tokens, len(spent), reason, tuple(tokens))


def decode(tokenizer, tokens: Sequence[int]) -> str:  # noqa: ANN001
    return tokenizer.decode(list(tokens), skip_special_tokens=True)


def first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index in ``text`` where the earliest stop string begins, or None."""
    positions = [p for p in (text.find(s) for s in stops) if p >= 0]
    return min(positions) if positions else None


def _tokens_until(tokenizer, tokens: Sequence[int], stops: Sequence[str]) -> int:  # noqa: ANN001
    # Smallest prefix whose text holds a stop string: the step at which a
    # per-row stopper (or vLLM) ends the sequence.  Containment only grows with
    # the prefix, so a binary search finds it in log(n) decodes.
    low, high = 1, len(tokens)
    while low < high:
        mid = (low + high) // 2
        if first_stop(decode(tokenizer, tokens[:mid]), stops) is None:
            low = mid + 1
        else:
            high = mid
    return high

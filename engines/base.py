"""The generation interface every backend implements.

An engine turns :class:`GenerationRequest` records into :class:`Completion`
records.  It knows nothing about math, datasets or tuning.  One decoding setting
means the same thing on every backend: greedy is greedy everywhere, and no
backend adds a repetition penalty or any other default of its own.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from engines.errors import ConfigError

FinishReason = Literal["eos", "stop", "length"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Decoding:
    """How tokens are chosen.  ``temperature == 0`` means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    n: int = 1

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.n < 1:
            raise ConfigError(f"n (samples per request) must be >= 1, got {self.n}")
        if self.is_greedy and self.n > 1:
            raise ConfigError("n > 1 needs sampling: set temperature > 0")

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0


GREEDY = Decoding()


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    """One prompt (plain text or chat messages) and how to continue it.

    ``target_output_tokens`` replays an output length: the engine then generates
    exactly that many tokens, ignoring EOS and stop strings.  Benchmarks use it
    with random-weight models, which never stop by themselves.
    """

    prompt: str | None = None
    messages: tuple[dict[str, str], ...] | None = None
    decoding: Decoding = GREEDY
    stop: tuple[str, ...] = ()
    max_new_tokens: int = 512
    target_output_tokens: int | None = None

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ConfigError("a request needs exactly one of prompt or messages")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.target_output_tokens is not None and not (
            1 <= self.target_output_tokens <= self.max_new_tokens
        ):
            raise ConfigError(
                f"target_output_tokens must be in [1, max_new_tokens={self.max_new_tokens}],"
                f" got {self.target_output_tokens}"
            )
        if any(not s for s in self.stop):
            raise ConfigError("stop strings must be non-empty")

    @property
    def max_tokens(self) -> int:
        """How many tokens this request may generate at most."""
        return self.target_output_tokens or self.max_new_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """One generated continuation.  ``text`` excludes the stop string."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    token_ids: tuple[int, ...] = ()


@dataclass(slots=True)
class EngineStats:
    """Counters an engine keeps while it runs (state, not configuration)."""

    num_generate_calls: int = 0
    num_requests: int = 0
    num_batches: int = 0
    num_decode_steps: int = 0
    num_oom_splits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class BatchOutput:
    """Completions for some requests of a call, in the caller's indices."""

    indices: tuple[int, ...]
    outputs: tuple[tuple[Completion, ...], ...]


class Engine(abc.ABC):
    """A text generator over one loaded model.

    Subclasses implement :meth:`iter_batches`; :meth:`generate` is built on it.
    Engines are not thread-safe: one caller at a time.
    """

    name: str = "engine"

    def __init__(self) -> None:
        self.stats = EngineStats()

    @abc.abstractmethod
    def iter_batches(self, requests: Sequence[GenerationRequest]) -> Iterator[BatchOutput]:
        """Generate for ``requests``, yielding results as each batch finishes.

        Every request index appears in exactly one yielded :class:`BatchOutput`,
        whose ``outputs[i]`` holds ``request.decoding.n`` completions for
        ``requests[indices[i]]``.  Callers that persist results per batch (so a
        crash loses at most one batch) consume this iterator; others call
        :meth:`generate`.

        Raises:
            EngineOutOfMemoryError: a single request does not fit in memory.
        """

    def generate(self, requests: Sequence[GenerationRequest]) -> list[tuple[Completion, ...]]:
        """Generate for ``requests``; result ``i`` holds the completions of request ``i``."""
        results: list[tuple[Completion, ...] | None] = [None] * len(requests)
        for batch in self.iter_batches(requests):
            for index, outputs in zip(batch.indices, batch.outputs, strict=True):
                results[index] = outputs
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # a broken backend must not pass silently as empty output
            raise RuntimeError(f"{self.name} engine returned no output for requests {missing}")
        return results  # type: ignore[return-value]

    @property
    def tokenizer(self):  # noqa: ANN201 - a transformers tokenizer
        """The Hugging Face tokenizer used for prompts and detokenisation."""
        raise NotImplementedError

    @abc.abstractmethod
    def settings(self) -> dict[str, object]:
        """The settings this engine runs with, defaults and resolved values included.

        Results store them (``run.json``), so a run says exactly what produced
        it, not only what was asked for; abstract so that no engine leaves them out.
        """

    def forget_cached_prompts(self) -> None:  # noqa: B027 - optional hook
        """Drop prompt KV blocks kept for reuse (vLLM's prefix cache).

        A benchmark calls this after its warm-up: a timed run that repeats the
        warm-up's prompts would otherwise skip their prefill, which no real
        evaluation (each problem seen once) gets to do.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model and its memory."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

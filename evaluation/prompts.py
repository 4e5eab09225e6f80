"""How a :class:`Problem` becomes a :class:`GenerationRequest`.

The default prompt is the question followed by the instruction to reason step
by step and box the final answer, the convention of math-tuned models (Qwen2.5-
Math, DeepSeek-Math).  With ``apply_chat_template`` the same text is sent as a
user message and the engine applies the model's chat template.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from engines import Decoding, GenerationRequest
from engines.errors import ConfigError
from evaluation.datasets import Problem

DEFAULT_TEMPLATE = (
    "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptSettings:
    """Prompt and decoding settings: everything that changes what is generated."""

    template: str = DEFAULT_TEMPLATE
    apply_chat_template: bool = False
    system_prompt: str | None = None
    decoding: Decoding = field(default_factory=Decoding)
    stop: tuple[str, ...] = ()
    max_new_tokens: int = 1024

    def __post_init__(self) -> None:
        if "{question}" not in self.template:
            raise ConfigError("template must contain the placeholder {question}")
        if self.system_prompt is not None and not self.apply_chat_template:
            raise ConfigError("system_prompt needs apply_chat_template=True")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def as_record(self) -> dict[str, object]:
        """A JSON-ready copy, stored with every run so results can be reproduced."""
        record = dataclasses.asdict(self)
        record["stop"] = list(self.stop)
        return record

    @classmethod
    def from_record(cls, record: dict) -> PromptSettings:
        """The inverse of :meth:`as_record`."""
        values = dict(record)
        values["decoding"] = Decoding(**values["decoding"])
        values["stop"] = tuple(values["stop"])
        return cls(**values)


def prompt_text(problem: Problem, settings: PromptSettings) -> str:
    """The user-visible text for ``problem``."""
    return settings.template.replace("{question}", problem.question).replace("{{}}", "{}")


def build_request(problem: Problem, settings: PromptSettings) -> GenerationRequest:
    """One request for ``problem`` under ``settings``."""
    text = prompt_text(problem, settings)
    common = {
        "decoding": settings.decoding,
        "stop": settings.stop,
        "max_new_tokens": settings.max_new_tokens,
    }
    if not settings.apply_chat_template:
        return GenerationRequest(prompt=text, **common)
    messages = (
        ({"role": "system", "content": settings.system_prompt},) if settings.system_prompt else ()
    )
    return GenerationRequest(messages=(*messages, {"role": "user", "content": text}), **common)

"""How a :class:`Problem` becomes a :class:`GenerationRequest`, for evaluation and tuning alike.

The default prompt is the question followed by the instruction to reason step
by step and box the final answer, the convention of math-tuned models (Qwen2.5-
Math, DeepSeek-Math).  With ``apply_chat_template`` the same text is sent as a
user message (after an optional system message) and the engine applies the
model's chat template.

The chat template is on by default ("auto") when the model's tokenizer has one:
an instruct model prompted with raw text answers with about one token.  The
random-weight ``synthetic:`` models are the exception: their tokenizer carries a
Qwen-style template so the chat path can be tested, but "auto" leaves it off,
so their figures stay comparable with every earlier run (no model reads the
wrapper; it would only add prompt tokens).  "auto" is resolved to a bool by
:func:`resolve_chat_template` before anything is recorded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from engines import Decoding, GenerationRequest
from engines.errors import ConfigError
from evaluation.datasets import Problem

DEFAULT_TEMPLATE = (
    "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
)
CHAT_TEMPLATE_CHOICES = {"auto": None, "on": True, "off": False}
# What a tuned profile's measurements depend on besides the engine: eval compares these
# with the profile's (decoding is left out: the tuner always measures greedy decoding).
TUNED_FIELDS = ("template", "apply_chat_template", "system_prompt", "stop", "max_new_tokens")


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptSettings:
    """Prompt and decoding settings: everything that changes what is generated.

    ``apply_chat_template`` is always a concrete bool here: "auto" is resolved
    (:func:`resolve_chat_template`) before a settings record exists.
    """

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
            raise ConfigError(
                "--system-prompt needs the chat template; drop --chat-template off"
                " or drop the system prompt"
            )
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ConfigError(f"--stop strings must be non-empty text, got {list(self.stop)!r}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def as_record(self) -> dict[str, object]:
        """A JSON-ready copy, stored with every run so results can be reproduced."""
        record = dataclasses.asdict(self)
        record["stop"] = list(self.stop)
        return record

    def tuned_record(self) -> dict[str, object]:
        """The settings a tuned profile records and eval compares (:data:`TUNED_FIELDS`)."""
        record = self.as_record()
        return {name: record[name] for name in TUNED_FIELDS}

    @classmethod
    def from_record(cls, record: dict) -> PromptSettings:
        """The inverse of :meth:`as_record`."""
        values = dict(record)
        values["decoding"] = Decoding(**values["decoding"])
        values["stop"] = tuple(values["stop"])
        return cls(**values)


def has_chat_template(model: str, tokenizer: object | None = None) -> bool:
    """What "auto" means for ``model``: it is not synthetic and its tokenizer has a template.

    ``tokenizer`` saves loading it again when the caller has it already.

    Raises:
        ModelLoadError: the model's tokenizer cannot be loaded.
    """
    from engines.models import is_synthetic

    if is_synthetic(model):  # random weights: keep the earlier, template-free figures
        return False
    if tokenizer is None:
        from engines.tokens import load_tokenizer

        tokenizer = load_tokenizer(model)
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_chat_template(
    choice: bool | None,
    model: str,
    *,
    system_prompt: str | None = None,
    tokenizer: object | None = None,
) -> bool:
    """``choice`` (``None`` = auto) as a concrete bool for ``model``.

    Raises:
        ConfigError: a system prompt without the chat template.
        ModelLoadError: "auto" and the model's tokenizer cannot be loaded.
    """
    chosen = has_chat_template(model, tokenizer) if choice is None else choice
    if system_prompt is not None and not chosen:
        why = (
            "--chat-template is off"
            if choice is False
            else f"model {model!r} has no chat template by default (add --chat-template on)"
        )
        raise ConfigError(f"--system-prompt needs the chat template, but {why}")
    return chosen


def chat_template_choice(value: str | bool | None) -> bool | None:
    """A flag or sweep-file value (``auto``/``on``/``off``, or a bool) as None/True/False.

    Raises:
        ConfigError: any other value.
    """
    if value is None or isinstance(value, bool):
        return value
    if value not in CHAT_TEMPLATE_CHOICES:
        raise ConfigError(
            f"chat template {value!r} is not one of {', '.join(CHAT_TEMPLATE_CHOICES)}"
        )
    return CHAT_TEMPLATE_CHOICES[value]


def prompt_differences(
    recorded: Mapping[str, object], settings: PromptSettings
) -> dict[str, tuple[object, object]]:
    """``{field: (recorded value, value in settings)}`` for each :data:`TUNED_FIELDS` that
    differs; a field ``recorded`` lacks (an older profile) is not compared."""
    current = settings.tuned_record()
    return {
        name: (recorded[name], current[name])
        for name in TUNED_FIELDS
        if name in recorded and recorded[name] != current[name]
    }


def prompt_text(problem: Problem, settings: PromptSettings) -> str:
    """The user-visible text for ``problem``."""
    return settings.template.replace("{question}", problem.question).replace("{{}}", "{}")


def text_request(
    text: str, settings: PromptSettings, *, target_output_tokens: int | None = None
) -> GenerationRequest:
    """``text`` as a request under ``settings``: a plain prompt, or chat messages."""
    common = {
        "decoding": settings.decoding,
        "stop": settings.stop,
        "max_new_tokens": settings.max_new_tokens,
        "target_output_tokens": target_output_tokens,
    }
    if not settings.apply_chat_template:
        return GenerationRequest(prompt=text, **common)
    messages = (
        ({"role": "system", "content": settings.system_prompt},) if settings.system_prompt else ()
    )
    return GenerationRequest(messages=(*messages, {"role": "user", "content": text}), **common)


def build_request(problem: Problem, settings: PromptSettings) -> GenerationRequest:
    """One request for ``problem`` under ``settings``."""
    return text_request(prompt_text(problem, settings), settings)

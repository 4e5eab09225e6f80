"""The workload a tuning study measures: a fixed sample of a dataset's problems.

A :class:`Workload` is a seeded sample of problems (the same ones on every run
and machine) turned into their real evaluation prompts.  Random-weight
``synthetic:`` models never stop by themselves, so for them each problem's
output length is *replayed*: the token length of its reference solution (with
the model's own tokenizer), clipped to ``max_new_tokens``.  Batching strategies
then see realistic, uneven lengths.  Real models generate until they stop.

Requests are built as evaluation builds them (:func:`evaluation.prompts.text_request`):
chat messages when the chat template is on (by default when the model's
tokenizer has one), the system prompt and the stop strings, so a tuned profile
measures what ``infertune eval`` will send.

The first ``num_canary`` problems are the canary subset: their greedy outputs
are compared with the reference configuration's for answer parity::

    workload = build_workload("synthetic:small", "synthetic", size=64)
    requests = workload.requests()            # list[GenerationRequest]
    workload.describe()                       # JSON for the profile
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from engines import GenerationRequest
from engines.errors import InfertuneError
from engines.models import is_synthetic
from engines.tokens import load_tokenizer

if TYPE_CHECKING:
    from evaluation.prompts import PromptSettings

DEFAULT_SIZE = 64
DEFAULT_CANARY = 16
DEFAULT_SEED = 0
DEFAULT_MAX_NEW_TOKENS = 256


class WorkloadError(InfertuneError, ValueError):
    """The workload cannot be built (too few problems, bad size, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """A fixed list of prompts, with replayed output lengths for synthetic models.

    ``output_lengths`` is ``None`` when the model generates real lengths.
    ``answers`` are the gold answers (recorded, never used for parity).
    ``prompts`` are the user texts; ``apply_chat_template``, ``system_prompt`` and
    ``stop`` say how they are sent (:attr:`prompt_settings`).
    """

    model: str
    dataset: str
    seed: int
    max_new_tokens: int
    problem_ids: tuple[str, ...]
    prompts: tuple[str, ...]
    answers: tuple[str, ...]
    output_lengths: tuple[int, ...] | None = None
    num_canary: int = DEFAULT_CANARY
    apply_chat_template: bool = False
    system_prompt: str | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.prompts:
            raise WorkloadError("Workload.prompts must hold at least one prompt")
        if not len(self.problem_ids) == len(self.prompts) == len(self.answers):
            raise WorkloadError("Workload.problem_ids, prompts and answers must have one length")
        if self.output_lengths is not None and (
            len(self.output_lengths) != len(self.prompts)
            or not all(1 <= n <= self.max_new_tokens for n in self.output_lengths)
        ):
            raise WorkloadError(
                "Workload.output_lengths needs one length in [1, max_new_tokens] per prompt"
            )
        if self.max_new_tokens < 1:
            raise WorkloadError(f"Workload.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not 1 <= self.num_canary <= len(self.prompts):
            raise WorkloadError(
                f"Workload.num_canary must be in [1, {len(self.prompts)}], got {self.num_canary}"
            )

        if self.system_prompt is not None and not self.apply_chat_template:
            raise WorkloadError("Workload.system_prompt needs apply_chat_template=True")
        if not all(self.stop):
            raise WorkloadError("Workload.stop strings must be non-empty")

    @property
    def size(self) -> int:
        return len(self.prompts)

    @property
    def prompt_settings(self) -> PromptSettings:
        """How every prompt is sent: greedy, with the workload's chat template, system
        prompt, stop strings and ``max_new_tokens``."""
        from evaluation.prompts import PromptSettings

        return PromptSettings(
            apply_chat_template=self.apply_chat_template,
            system_prompt=self.system_prompt,
            stop=self.stop,
            max_new_tokens=self.max_new_tokens,
        )

    @property
    def key(self) -> str:
        """A short content hash: equal keys mean the same requests (prompt settings included)."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def requests(self) -> list[GenerationRequest]:
        """Greedy requests for every problem, in workload order (canaries first)."""
        from evaluation.prompts import text_request

        settings = self.prompt_settings
        lengths = self.output_lengths or (None,) * self.size
        return [
            text_request(prompt, settings, target_output_tokens=length)
            for prompt, length in zip(self.prompts, lengths, strict=True)
        ]

    def describe(self) -> dict[str, Any]:
        """What was measured, as stored in a profile (no prompts, just their identity)."""
        lengths = self.output_lengths
        return {
            "dataset": self.dataset,
            "num_problems": self.size,
            "seed": self.seed,
            "max_new_tokens": self.max_new_tokens,
            "num_canary": self.num_canary,
            "decoding": "greedy",
            "replayed_output_lengths": lengths is not None,
            "mean_output_tokens": None if lengths is None else sum(lengths) / len(lengths),
            "first_problem_ids": list(self.problem_ids[:8]),
            "prompt": self.prompt_settings.tuned_record(),
            "key": self.key,
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Workload:
        """The inverse of :meth:`to_json`."""
        data = json.loads(text)
        for name in ("problem_ids", "prompts", "answers", "stop"):
            if name in data:
                data[name] = tuple(data[name])
        if data["output_lengths"] is not None:
            data["output_lengths"] = tuple(data["output_lengths"])
        return cls(**data)


def build_workload(
    model: str,
    dataset: str,
    *,
    size: int = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    num_canary: int = DEFAULT_CANARY,
    data_dir: str | os.PathLike[str] | None = None,
    chat_template: bool | None = None,
    system_prompt: str | None = None,
    stop: Sequence[str] | None = None,
) -> Workload:
    """Sample ``size`` problems of ``dataset`` (seeded) and build their prompts.

    ``chat_template``: ``None`` (auto) applies it when the model's tokenizer has
    one (:func:`evaluation.prompts.resolve_chat_template`); the workload holds the
    resolved bool.  Loads ``model``'s tokenizer, so an unknown model fails here,
    before any study.

    Raises:
        WorkloadError: ``size`` is not positive or exceeds the dataset.
        DatasetError: the dataset is unknown or unreadable.
        ModelLoadError: the model's tokenizer cannot be loaded.
        ConfigError: a system prompt without the chat template, or an empty stop string.
    """
    from evaluation.datasets import load_problems
    from evaluation.prompts import PromptSettings, prompt_text, resolve_chat_template

    if size < 1:
        raise WorkloadError(f"workload size must be >= 1, got {size}")
    problems = load_problems(dataset, data_dir=data_dir)
    if len(problems) < size:
        raise WorkloadError(
            f"dataset {dataset!r} has {len(problems)} problems, fewer than the workload size"
            f" {size}; lower --count"
        )
    # Sampling indices (not shuffling the list) keeps the choice stable per seed.
    chosen = [problems[i] for i in random.Random(seed).sample(range(len(problems)), size)]
    settings = PromptSettings(max_new_tokens=max_new_tokens)
    tokenizer = load_tokenizer(model)
    chat = resolve_chat_template(
        chat_template, model, system_prompt=system_prompt, tokenizer=tokenizer
    )
    lengths = None
    if is_synthetic(model):
        lengths = tuple(_replayed_length(tokenizer, p, max_new_tokens) for p in chosen)
    return Workload(
        model=model,
        dataset=dataset,
        seed=seed,
        max_new_tokens=max_new_tokens,
        problem_ids=tuple(p.id for p in chosen),
        prompts=tuple(prompt_text(p, settings) for p in chosen),
        answers=tuple(p.answer for p in chosen),
        output_lengths=lengths,
        num_canary=min(num_canary, size),
        apply_chat_template=chat,
        system_prompt=system_prompt,
        stop=tuple(stop or ()),
    )


def _replayed_length(tokenizer, problem, max_new_tokens: int) -> int:  # noqa: ANN001
    # Without a reference solution (SVAMP, GSM-Hard) the answer is all we have.
    text = problem.solution or problem.answer
    count = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return max(1, min(count, max_new_tokens))

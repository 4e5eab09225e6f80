"""What the tuner may choose: backends and their knobs, as an Optuna search space.

One table (:data:`KNOBS`) says, per backend, which trial parameter sets which
engine setting and where its choices come from; :meth:`SearchSpace.suggest`
(Optuna, conditional on the backend), :meth:`SearchSpace.grid` (every
combination, for the efficiency benchmark) and :meth:`SearchSpace.params_of`
(seeding a study with a known configuration) all read it.  A candidate is a
:class:`tuner.profiles.ProfileConfig`: its ``settings`` pass straight to
``engines.load_engine``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engines.errors import ConfigError
from engines.registry import batch_field
from engines.vllm import DEFAULT_MAX_NUM_SEQS
from tuner.profiles import ProfileConfig

# backend -> ((trial parameter, engine setting, SearchSpace field holding the choices), ...)
KNOBS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "transformers": (
        ("batch_size", "batch_size", "batch_sizes"),
        ("stopping", "stopping", "stoppings"),
        ("sort_by_length", "sort_by_length", "sort_by_length"),
        ("attn_implementation", "attn_implementation", "attn_implementations"),
    ),
    "vllm": (
        ("max_num_seqs", "max_num_seqs", "num_seqs"),
        ("max_num_batched_tokens", "max_num_batched_tokens", "max_num_batched_tokens"),
        ("enable_prefix_caching", "enable_prefix_caching", "enable_prefix_caching"),
        ("enforce_eager", "enforce_eager", "enforce_eager"),
        ("tensor_parallel_size", "tensor_parallel_size", "tensor_parallel_sizes"),
    ),
    "transformers_cb": (
        ("max_requests_per_batch", "max_requests_per_batch", "batch_sizes"),
        ("max_batch_tokens", "max_batch_tokens", "cb_max_batch_tokens"),
        ("attn_implementation", "attn_implementation", "attn_implementations"),
    ),
}
CB_PAGE_SIZE = 64
CB_PROMPT_ALLOWANCE = 512  # tokens per row reserved for the prompt in the CB KV cache


def power_of_two_sizes(limit: int) -> tuple[int, ...]:
    """``1, 2, 4, ...`` up to ``limit``, plus ``limit`` itself when it is no power of two."""
    if limit < 1:
        raise ConfigError(f"the largest batch size must be >= 1, got {limit}")
    sizes = [2**k for k in range(int(math.log2(limit)) + 1)]
    return tuple(sizes if sizes[-1] == limit else [*sizes, limit])


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchSpace:
    """Choices for every knob; a backend's knobs are searched only under that backend.

    ``num_seqs`` are vLLM's ``max_num_seqs`` choices (empty: the ``batch_sizes``).
    """

    backends: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    num_seqs: tuple[int, ...] = ()
    dtypes: tuple[str, ...] = ("float32",)
    stoppings: tuple[str, ...] = ("post", "per_row")
    sort_by_length: tuple[bool, ...] = (True, False)
    attn_implementations: tuple[str, ...] = ("sdpa", "eager")
    max_num_batched_tokens: tuple[int | None, ...] = (None, 1024, 4096)
    enable_prefix_caching: tuple[bool, ...] = (False, True)
    enforce_eager: tuple[bool, ...] = (True,)
    tensor_parallel_sizes: tuple[int, ...] = (1,)
    cb_max_batch_tokens: tuple[int, ...] = (256, 512, 1024)
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        unknown = [b for b in self.backends if b not in KNOBS]
        if not self.backends or unknown:
            raise ConfigError(
                f"backends must be some of {', '.join(KNOBS)}, got {', '.join(self.backends)}"
            )
        for name in ("batch_sizes", "dtypes", "stoppings", "sort_by_length"):
            if not getattr(self, name):
                raise ConfigError(f"SearchSpace.{name} needs at least one choice")
        if not self.num_seqs:  # resolved once here, so every reader sees one tuple
            object.__setattr__(self, "num_seqs", self.batch_sizes)
        if min(self.batch_sizes) < 1 or min(self.num_seqs) < 1:
            raise ConfigError(f"batch sizes must be >= 1, got {self.batch_sizes}, {self.num_seqs}")

    @classmethod
    def for_machine(
        cls,
        backends: tuple[str, ...],
        *,
        has_gpu: bool,
        num_gpus: int,
        max_batch_size: int | None,
        max_new_tokens: int,
    ) -> SearchSpace:
        """The default space for a machine: CPU float32 only, GPU dtypes and vLLM graphs.

        Batch sizes reach ``max_batch_size`` (the probe's maximum; unknown: vLLM's
        default), and vLLM's ``max_num_seqs`` reaches its default 256 as well:
        vLLM admits no more sequences than its KV cache holds, so a larger value
        costs nothing, and the evaluation runs with it when no profile is applied.
        """
        # vLLM's own max_num_seqs when none is set: a profile must be able to reach (and beat) it
        largest = max_batch_size or DEFAULT_MAX_NUM_SEQS
        return cls(
            backends=backends,
            batch_sizes=power_of_two_sizes(largest),
            num_seqs=power_of_two_sizes(max(largest, DEFAULT_MAX_NUM_SEQS)),
            # bfloat16 on a CPU without native support is slow and not batch-invariant.
            dtypes=("bfloat16", "float16", "float32") if has_gpu else ("float32",),
            # CUDA graphs / torch.compile only pay off on GPU; on CPU they cost startup.
            enforce_eager=(True, False) if has_gpu else (True,),
            tensor_parallel_sizes=power_of_two_sizes(num_gpus) if num_gpus > 1 else (1,),
            max_new_tokens=max_new_tokens,
        )

    def suggest(self, trial: Any) -> ProfileConfig:
        """Sample a configuration in an Optuna ``trial`` (conditional on the backend)."""
        backend = trial.suggest_categorical("backend", list(self.backends))
        params = {
            "backend": backend,
            "dtype": trial.suggest_categorical("dtype", list(self.dtypes)),
        }
        for param, _, field in KNOBS[backend]:
            params[param] = trial.suggest_categorical(param, list(getattr(self, field)))
        return self.config_of(params)

    def config_of(self, params: dict[str, Any]) -> ProfileConfig:
        """The engine configuration that trial ``params`` stand for."""
        backend = params["backend"]
        settings = {setting: params[param] for param, setting, _ in KNOBS[backend]}
        settings["dtype"] = params["dtype"]
        if backend == "transformers_cb":
            # Size the paged KV cache for every row of a full batch, so the cache
            # is never what limits the batch being measured.
            rows = settings["max_requests_per_batch"]
            per_row = CB_PROMPT_ALLOWANCE + self.max_new_tokens
            settings["num_blocks"] = math.ceil(rows * per_row / CB_PAGE_SIZE)
            settings["page_size"] = CB_PAGE_SIZE
        return ProfileConfig(
            backend=backend, settings=settings, batch_size=settings[batch_field(backend)]
        )

    def params_of(self, config: ProfileConfig) -> dict[str, Any] | None:
        """Trial parameters for ``config``, or ``None`` when it lies outside this space."""
        if config.backend not in self.backends:
            return None
        params = {"backend": config.backend, "dtype": config.settings.get("dtype")}
        for param, setting, _ in KNOBS[config.backend]:
            params[param] = config.settings.get(setting)
        fields = {"dtype": "dtypes"} | {p: f for p, _, f in KNOBS[config.backend]}
        inside = all(params[p] in getattr(self, f) for p, f in fields.items())
        return params if inside else None

    def largest_batch_configs(self) -> list[ProfileConfig]:
        """Per backend, its largest batch with the first choice of every other knob."""
        return [self._with_batch(backend, max) for backend in self.backends]

    def _with_batch(self, backend: str, pick: Callable[[tuple[int, ...]], int]) -> ProfileConfig:
        params = {"backend": backend, "dtype": self.dtypes[0]}
        for param, setting, field in KNOBS[backend]:
            choices = getattr(self, field)
            params[param] = pick(choices) if setting == batch_field(backend) else choices[0]
        return self.config_of(params)

    def seed_configs(self, *, samples_per_problem: int = 1) -> list[ProfileConfig]:
        """Per backend, its largest batch up to :attr:`batch_sizes`' largest (the probe's maximum).

        vLLM's ``max_num_seqs`` choices go further, to its default 256, but a trial
        measures twice its batch: at 256, 512 sequences, which on a CPU (about one
        problem per second for SmolLM2) outlasts a whole short budget, and a trial
        killed at the deadline measures nothing.  So vLLM is seeded where the other
        backends are, and the search goes above it when the budget allows.

        A mode drawing k samples per problem seeds vLLM at k times that: its
        ``max_num_seqs`` counts sequences, and k times the standard batch is what an
        untuned run of the mode uses (SmolLM2, 32 svamp problems, k=5 on the CPU: a tuned
        entry seeded at 32 sequences took 258 s, the untuned 160 took 194 s).
        """
        cap = max(self.batch_sizes)

        def up_to(limit: int) -> Callable[[tuple[int, ...]], int]:
            return lambda sizes: max((s for s in sizes if s <= limit), default=min(sizes))

        return [
            self._with_batch(
                backend, up_to(cap * samples_per_problem if backend == "vllm" else cap)
            )
            for backend in self.backends
        ]

    def smallest_batch_configs(self) -> list[ProfileConfig]:
        """Per backend, its smallest batch with the first choice of every other knob."""
        return [self._with_batch(backend, min) for backend in self.backends]

    def grid(self) -> list[ProfileConfig]:
        """Every configuration of the space (the exhaustive baseline of the benchmark)."""
        configs = []
        for backend in self.backends:
            knobs = KNOBS[backend]
            choices = [self.dtypes] + [getattr(self, field) for _, _, field in knobs]
            for values in itertools.product(*choices):
                params = {"backend": backend, "dtype": values[0]}
                params |= {param: v for (param, _, _), v in zip(knobs, values[1:], strict=True)}
                configs.append(self.config_of(params))
        return configs


def reference_config(dtype: str) -> ProfileConfig:
    """The parity and speedup reference: transformers, one request at a time."""
    settings = {
        "batch_size": 1,
        "stopping": "per_row",
        "sort_by_length": False,
        "attn_implementation": "sdpa",
        "dtype": dtype,
    }
    return ProfileConfig(backend="transformers", settings=settings, batch_size=1)

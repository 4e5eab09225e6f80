"""How much faster than batch size 1 is each configuration, measured on one workload.

The configurations of the speedup table are one table, :func:`standard_configs`:
the baseline (transformers, batch size 1), transformers at batch sizes 16 and
32, vLLM at ``max_num_seqs`` 32 and 64 and with every knob at its default
(``vllm-defaults``), and the tuned profile of this machine when one exists.
:func:`run_speedup` measures each of them with :func:`tuner.benchmark.run_trial`
(its own subprocess, warm-up excluded, a time limit) on the very same workload,
so every row sees the same prompts, the same greedy decoding and the same
replayed output lengths, and turns each :class:`~tuner.benchmark.TrialResult`
into a :class:`SpeedupRow`::

    workload = build_workload("synthetic:small", "gsm8k", size=64, num_canary=64)
    configs, notes = select_configs(DEFAULT_NAMES, on_gpu=False, vllm_available=True)
    rows = run_speedup(workload, configs)

Accuracy and agreement cover every problem: the workload's canary subset must
be the whole workload (``num_canary == size``), so each trial returns the
extracted answer and tokens of every problem.  Each row is compared with the
baseline by the rule tune uses (:mod:`tuner.answer_parity`): agreement, the
flips and McNemar's p; a row that fails it is marked, never hidden, and
:func:`best_row` only ever names an acceptable one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from engines.errors import ConfigError
from engines.vllm import DEFAULT_MAX_NUM_SEQS
from tuner.answer_parity import DEFAULT_THRESHOLD
from tuner.measurement.benchmark import TrialResult, parity_report, run_trial
from tuner.measurement.workload import Workload
from tuner.profiles import ProfileConfig

BASELINE = "baseline"
TUNED = "tuned"
DEFAULT_NAMES = (
    BASELINE,
    "transformers-bs16",
    "transformers-bs32",
    "vllm-seqs32",
    "vllm-seqs64",
    "vllm-defaults",
    TUNED,
)
DEFAULT_TIME_LIMIT_S = 1800.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeedupConfig:
    """One row of the table: a backend and its settings (passed to ``load_engine``).

    ``batch_size`` is what the throughput-vs-batch-size plot uses (transformers'
    ``batch_size``, vLLM's ``max_num_seqs``).
    """

    name: str
    backend: str
    settings: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("SpeedupConfig.name must be non-empty")
        if not self.backend:
            raise ValueError("SpeedupConfig.backend must be non-empty")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"SpeedupConfig.batch_size must be >= 1, got {self.batch_size}")


def standard_configs(*, on_gpu: bool) -> dict[str, SpeedupConfig]:
    """Every fixed configuration of the table, by name (the tuned one comes from a profile)."""
    configs = {
        BASELINE: SpeedupConfig(
            name=BASELINE, backend="transformers", settings={"batch_size": 1}, batch_size=1
        )
    }
    for size in (16, 32):
        name = f"transformers-bs{size}"
        configs[name] = SpeedupConfig(
            name=name, backend="transformers", settings={"batch_size": size}, batch_size=size
        )
        # "post" decodes every row until the batch's longest finishes; next to the
        # default per_row row it shows what stopping finished rows is worth.
        configs[f"{name}-post"] = SpeedupConfig(
            name=f"{name}-post",
            backend="transformers",
            settings={"batch_size": size, "stopping": "post"},
            batch_size=size,
        )
    configs["transformers-cb32"] = SpeedupConfig(
        name="transformers-cb32",
        backend="transformers_cb",
        settings={"max_requests_per_batch": 32},
        batch_size=32,
    )
    # On CPU, vLLM's graph compilation costs minutes on a few cores and gains little.
    extra = {} if on_gpu else {"enforce_eager": True}
    for size in (32, 64):
        name = f"vllm-seqs{size}"
        configs[name] = SpeedupConfig(
            name=name, backend="vllm", settings={"max_num_seqs": size, **extra}, batch_size=size
        )
    # What `eval --backend vllm` runs with no profile: every knob at vLLM's default
    # (max_num_seqs 256, graphs compiled, on CPU too, where that costs minutes of load),
    # so a tuned profile is seen to beat doing nothing.  Nothing is needed for it to run
    # at all: the engine sizes the CPU KV cache and the trial max_model_len.
    configs["vllm-defaults"] = SpeedupConfig(
        name="vllm-defaults", backend="vllm", settings={}, batch_size=DEFAULT_MAX_NUM_SEQS
    )
    return configs


def select_configs(
    names: Sequence[str],
    *,
    on_gpu: bool,
    vllm_available: bool,
    tuned: ProfileConfig | None = None,
    tuned_missing: str = "no tuned profile for this model and machine",
) -> tuple[list[SpeedupConfig], list[str]]:
    """The configurations to run for ``names``, baseline first, and a note per skipped one.

    Raises:
        ConfigError: a name is not a known configuration.
    """
    standard = standard_configs(on_gpu=on_gpu)
    known = [*standard, TUNED]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"unknown configuration(s) {', '.join(unknown)} for --configs;"
            f" choose from: {', '.join(known)}"
        )
    notes = []
    if BASELINE not in names:
        notes.append("baseline added: every speedup is relative to it")
    chosen: list[SpeedupConfig] = []
    for name in dict.fromkeys([BASELINE, *names]):  # baseline first, no duplicates
        if name == TUNED:
            if tuned is None:
                notes.append(f"tuned: skipped, {tuned_missing}")
            else:
                chosen.append(
                    SpeedupConfig(
                        name=TUNED,
                        backend=tuned.backend,
                        settings=dict(tuned.settings),
                        batch_size=tuned.batch_size,
                    )
                )
        elif standard[name].backend == "vllm" and not vllm_available:
            notes.append(f"{name}: skipped, vLLM is not installed")
        else:
            chosen.append(standard[name])
    return chosen, notes


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeedupRow:
    """One measured configuration.  Rates are ``None`` when the trial did not finish.

    ``settings`` are the ones asked for, ``resolved_settings`` every engine
    setting as the engine ran it.  ``load_s`` is the time from the start of the
    configuration's subprocess to its engine ready, ``warmup_s`` its untimed first
    batch, ``seconds`` the timed run.  ``speedup`` is problems/s over the
    baseline's; ``accuracy`` the fraction of problems answered correctly
    (graded against the gold answers);
    ``agreement`` the fraction whose greedy answer (or, without an extracted
    answer, whose tokens) matched the baseline's.  For a model that answers
    (``is_answering``), ``right_to_wrong`` / ``wrong_to_right`` count the flips
    against the baseline, ``accuracy_delta`` is this row's accuracy minus the
    baseline's and ``p_value`` McNemar's; ``is_acceptable`` applies tune's rule
    (:meth:`tuner.answer_parity.ParityReport.is_acceptable`).  GPU utilisation
    (mean, %) and energy per problem (J) are ``None`` without a GPU.
    """

    name: str
    backend: str
    batch_size: int | None
    settings: dict[str, Any]
    status: str
    resolved_settings: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    seconds: float | None = None
    load_s: float | None = None
    warmup_s: float | None = None
    problems_per_s: float | None = None
    output_tokens_per_s: float | None = None
    speedup: float | None = None
    peak_memory_bytes: int | None = None
    gpu_utilization_pct: float | None = None
    energy_per_problem_j: float | None = None
    accuracy: float | None = None
    agreement: float | None = None
    is_answering: bool | None = None
    right_to_wrong: int | None = None
    wrong_to_right: int | None = None
    accuracy_delta: float | None = None
    p_value: float | None = None
    is_acceptable: bool | None = None

    @property
    def is_ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def accuracy(result: TrialResult, workload: Workload) -> float | None:
    """Fraction of the workload's problems whose extracted answer matches the gold one."""
    from evaluation.grading import answers_match

    if not result.is_ok or len(result.canary_answers) != workload.size:
        return None
    correct = sum(
        answers_match(answer, gold)
        for answer, gold in zip(result.canary_answers, workload.answers, strict=True)
    )
    return correct / workload.size


def make_row(
    config: SpeedupConfig,
    result: TrialResult,
    workload: Workload,
    baseline: TrialResult,
    *,
    parity_threshold: float = DEFAULT_THRESHOLD,
) -> SpeedupRow:
    """Turn one trial into a table row, relative to the ``baseline`` trial."""
    fields = {
        "name": config.name,
        "backend": config.backend,
        "batch_size": config.batch_size,
        "settings": dict(config.settings),
        "resolved_settings": dict(result.engine_settings),
        "status": result.status,
        "message": result.message,
    }
    if not result.is_ok:
        return SpeedupRow(**fields)
    energy = result.gpu_energy_j
    return SpeedupRow(
        **fields,
        seconds=result.seconds,
        load_s=result.load_s,
        warmup_s=result.warmup_s,
        problems_per_s=result.problems_per_s,
        output_tokens_per_s=result.output_tokens_per_s,
        speedup=result.problems_per_s / baseline.problems_per_s if baseline.is_ok else None,
        peak_memory_bytes=result.peak_memory_bytes,
        gpu_utilization_pct=result.gpu_utilization_pct,
        energy_per_problem_j=None if energy is None else energy / result.num_problems,
        accuracy=accuracy(result, workload),
        **(
            parity_report(result, baseline, workload.answers).row_fields(parity_threshold)
            if baseline.is_ok
            else {}
        ),
    )


def best_row(rows: Sequence[SpeedupRow]) -> SpeedupRow | None:
    """The fastest row that finished and gives the baseline's answers (tune's rule)."""
    acceptable = [r for r in rows if r.is_ok and r.is_acceptable and r.problems_per_s]
    return max(acceptable, key=lambda r: r.problems_per_s or 0.0, default=None)


def run_speedup(
    workload: Workload,
    configs: Sequence[SpeedupConfig],
    *,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    parity_threshold: float = DEFAULT_THRESHOLD,
    log: Callable[[str], None] = print,
) -> list[SpeedupRow]:
    """Measure each configuration on ``workload``, one subprocess each, baseline first.

    Raises:
        ConfigError: the first configuration is not the baseline, or the
            workload's canary subset is not the whole workload.
    """
    if not configs or configs[0].name != BASELINE:
        raise ConfigError("the first configuration must be the baseline (see select_configs)")
    if workload.num_canary != workload.size:
        raise ConfigError(
            f"the workload's canary subset ({workload.num_canary}) must be all of its"
            f" {workload.size} problems, so accuracy and agreement cover every problem"
        )
    results: list[TrialResult] = []
    for config in configs:
        log(f"measuring {config.name}: {config.backend} {config.settings}")
        result = run_trial(
            config.backend, workload.model, config.settings, workload, time_limit_s=time_limit_s
        )
        if not result.is_ok:
            log(f"  {config.name}: {result.status}: {result.message}")
        results.append(result)
    return [
        make_row(config, result, workload, results[0], parity_threshold=parity_threshold)
        for config, result in zip(configs, results, strict=True)
    ]

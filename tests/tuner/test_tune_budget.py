"""``tune --budget``: the whole tune ends in the time given, with a profile and its stop reason.

Real studies (SQLite storage, real trial subprocesses on synthetic:tiny).  The one
test that must see a trial refused for time stores the reference result it
reads (the lowest layer the estimate reads) with a load time longer than the
budget, so the refusal does not depend on how loaded the machine is.
"""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import TrialState

from commands.main import main
from tuner.measurement.benchmark import TrialResult
from tuner.measurement.workload import build_workload
from tuner.profiles import load_profile
from tuner.search.budget import (
    Budget,
    Cost,
    TuneProgress,
    estimate_s,
    format_duration,
    parse_duration,
)
from tuner.search.space import SearchSpace
from tuner.search.storage import open_study
from tuner.search.study import Objective, StudySettings, optimize, store_reference
from tuner.search.tuning import run_tuning

TINY = "synthetic:tiny"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600), ("90s", 90), ("1h30m", 5400), ("600", 600), ("2.5m", 150), (" 1H ", 3600)],
)
def test_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m", "0", "-5", "30m1h", "10m10m", "inf", "nan"])
def test_bad_durations_are_refused_with_the_flag_named(text):
    with pytest.raises(ValueError, match="--budget"):
        parse_duration(text)


@pytest.mark.parametrize("argv", [["--budget", "10x"], ["--budget", "0"], ["--timeout", "-1"]])
def test_a_bad_budget_is_one_line_exit_2_and_nothing_written(argv, tmp_path, capsys):
    code = main(["tune", "--model", TINY, "--dataset", "synthetic", "--profiles-dir",
                 str(tmp_path / "profiles"), *argv])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert argv[0] in err
    assert not (tmp_path / "profiles").exists()


def test_the_estimate_lets_a_larger_batch_be_faster_but_not_without_bound():
    reference = Cost(backend="transformers", batch_size=1, startup_s=5.0, problems_per_s=2.0)
    # batch 8 at best 8x batch 1's rate; vLLM's start-up unknown: transformers' is the guess
    assert estimate_s([reference], "transformers", 8, 32) == pytest.approx(5.0 + 32 / 16)
    assert estimate_s([reference], "vllm", 1, 4) == pytest.approx(5.0 + 2)
    assert estimate_s([], "vllm", 256, 512) == 0.0  # nothing measured: nothing refused
    progress = TuneProgress(num_done=2, n_trials=9, remaining_s=75, best_number=1,
                            best_problems_per_s=3.14159)  # fmt: skip
    assert progress.describe() == "2/9 trials; best trial 1: 3.14 problems/s; 1m15s left"
    assert format_duration(5400) == "1h30m" and format_duration(42.4) == "42s"


def test_a_trial_that_cannot_finish_in_the_budget_left_is_not_started(tmp_path):
    workload = build_workload(TINY, "synthetic", size=4, max_new_tokens=4, num_canary=2)
    space = SearchSpace(backends=("transformers",), batch_sizes=(1, 2), stoppings=("per_row",),
                        sort_by_length=(False,), attn_implementations=("sdpa",))  # fmt: skip
    settings = StudySettings(model=TINY, n_trials=5, timeout_s=30)
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "tight", settings)
    # the reference took 60 s to load: no trial of this machine can finish in 30 s
    slow = TrialResult(status="ok", problems_per_s=1.0, load_s=60.0, canary_answers=(None,) * 2,
                       canary_token_ids=((1,), (1,)))  # fmt: skip
    store_reference(study, "float32", slow)
    lines: list[str] = []
    objective = Objective(space, workload, settings, log=lines.append, budget=Budget(total_s=30))
    assert optimize(study, objective, settings) == "budget"
    [trial] = study.get_trials()  # refused, and the study stopped: nothing fits
    assert trial.state == TrialState.PRUNED and trial.user_attrs["status"] == "skipped"
    assert "problems_per_s" not in trial.user_attrs  # no subprocess ran
    assert "needs about" in trial.user_attrs["message"] and "needs about" in lines[-1]


def test_a_tiny_budget_stops_for_budget_and_still_writes_the_best_profile(tmp_path):
    lines: list[str] = []
    seen: list[TuneProgress] = []
    outcome = run_tuning(
        TINY, "synthetic", backends=("transformers",), count=4, max_new_tokens=4, canary_size=2,
        max_batch_size=16, n_trials=10_000, budget_s=45, seed=0,
        profiles_dir=tmp_path / "profiles", log=lines.append, progress=seen.append,
    )  # fmt: skip
    assert outcome.stop_reason == "budget", lines
    assert outcome.budget_s == 45 and outcome.budget_used_s < 45 + 15  # plots after the last
    assert outcome.profile is not None and outcome.path is not None
    study = load_profile(outcome.path).study
    assert study.stop_reason == "budget" and study.budget_s == 45 and study.budget_used_s > 0
    # the seeded largest batch (16 > the 4 problems asked for) measured a full batch twice
    first = next(r for r in outcome.rows if r.number == 0)
    assert first.batch_size == 16 and first.status == "ok"
    trial = optuna.load_study(study_name=study.study_name, storage=study.storage).trials[0]
    assert trial.user_attrs["num_problems"] == 32
    assert sum("measuring the parity reference" in line for line in lines) == 1
    assert seen and seen[-1].num_done >= 1 and seen[-1].best_number is not None
    assert not math.isinf(seen[-1].remaining_s)


def test_queued_configurations_do_not_count_against_n_trials(tmp_path):
    """Three queued configurations and n_trials 2: two run, one stays queued.

    Waiting trials used to count towards the cap, so a study seeded with as many
    configurations as it had trials stopped after its first.
    """
    workload = build_workload(TINY, "synthetic", size=2, max_new_tokens=2, num_canary=2)
    space = SearchSpace(backends=("transformers",), batch_sizes=(1, 2), sort_by_length=(False,),
                        attn_implementations=("sdpa",))  # fmt: skip
    settings = StudySettings(model=TINY, n_trials=2)
    study = open_study(f"journal:{tmp_path / 'study.log'}", "queued", settings)
    reference = TrialResult(status="ok", problems_per_s=1.0, load_s=1.0,
                            canary_answers=(None,) * 2, canary_token_ids=((1,), (1,)))  # fmt: skip
    store_reference(study, "float32", reference)
    for config in space.grid()[:3]:
        study.enqueue_trial(space.params_of(config))
    objective = Objective(space, workload, settings, log=[].append)
    assert optimize(study, objective, settings) == "n_trials"
    states = [trial.state for trial in study.get_trials()]
    assert len(states) == 3 and states.count(TrialState.WAITING) == 1

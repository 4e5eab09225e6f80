"""The wall-time objective: crossovers between trials' lines, the profile's by_count and
modes entries on a real study storage, and old profiles still read."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from common.hardware import fingerprint
from tuner.measurement.workload import build_workload
from tuner.profiles import Profile, load_profile, save_profile
from tuner.reports.tune import build_profile
from tuner.search.objective_wall import RunShape, WallLine, count_ranges, mode_workload, wall_lines
from tuner.search.run_profile import fit_profile
from tuner.search.storage import StudyError, open_study
from tuner.search.study import StudySettings
from tuner.search.trials import trial_rows

TINY = "synthetic:tiny"
# (batch, problems/s, load s, warm-up s): batch 2 loads fast and runs slowly, batch 8 the
# reverse: 2 + N/2 = 20 + N/10 at N = 45; batch 16 is never best (30 + N/5)
TRIALS = ((2, 2.0, 2.0, 0.0), (8, 10.0, 15.0, 5.0), (16, 5.0, 25.0, 5.0))


def add_trials(study: optuna.Study, trials=TRIALS, samples: int = 1) -> None:
    """Finished, feasible trials as the Objective records them (values built directly)."""
    for batch, speed, load, warmup in trials:
        attrs = {"backend": "transformers", "settings": {"batch_size": batch, "dtype": "float32"},
                 "batch_size": batch, "status": "ok", "problems_per_s": speed * samples,
                 "output_tokens_per_s": speed * 8, "agreement": 1.0, "is_answering": False,
                 "constraints": [0.0, 0.0], "load_s": load, "warmup_s": warmup,
                 "samples_per_problem": samples}  # fmt: skip
        trial = optuna.trial.create_trial(state=TrialState.COMPLETE, value=load, user_attrs=attrs)
        study.add_trial(trial)


@pytest.fixture(scope="module")
def workload():
    return build_workload(TINY, "synthetic", size=6, max_new_tokens=8, num_canary=3)


def study_in(tmp_path: Path, name: str = "s") -> optuna.Study:
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    study = open_study(storage, name, StudySettings(model=TINY))
    study.set_user_attr("storage", storage)  # for the profile's study reference
    return study


def fitted(study, workload, run: RunShape, existing: Profile | None = None) -> Profile:
    hardware, rows = fingerprint(), trial_rows(study)
    storage = study.user_attrs["storage"]

    def build(row):
        return build_profile(row, 1.0, workload, hardware, storage, study.study_name)

    return fit_profile(study, rows, run, build, existing=existing,
                       extra_workload={"max_batch_size": 12})  # fmt: skip


def test_the_winner_changes_where_the_lines_cross(tmp_path: Path) -> None:
    study = study_in(tmp_path)
    add_trials(study)
    lines = wall_lines(study)
    assert [line.problems_per_s for line in lines] == [2.0, 10.0, 5.0]
    ranges = count_ranges(lines)
    assert [(low, high, line.trial_number) for low, high, line in ranges] == [
        (1, 44, 0),
        (45, None, 1),  # at 45 the two tie: the higher throughput wins
    ]
    assert count_ranges(lines[2:]) == [(1, None, lines[2])]  # one line: one range


def test_rows_carry_the_startup_and_the_budget_reads_them(tmp_path: Path) -> None:
    # The wall lines, the budget's costs and tables all read the typed row, not attributes.
    from tuner.measurement.benchmark import TrialResult
    from tuner.search.budget import costs_of

    study = study_in(tmp_path)
    add_trials(study, samples=3)
    rows = sorted(trial_rows(study), key=lambda row: row.number)
    assert [(r.load_s, r.warmup_s, r.samples_per_problem) for r in rows] == [
        (load, warmup, 3) for _, _, load, warmup in TRIALS
    ]
    assert [r.startup_s for r in rows] == [2.0, 20.0, 30.0]
    assert [r.run_problems_per_s for r in rows] == [2.0, 10.0, 5.0]
    assert [line.problems_per_s for line in wall_lines(study)] == [2.0, 10.0, 5.0]
    costs = costs_of(study, TrialResult(status="error"))  # a reference that did not run
    assert [(c.batch_size, c.startup_s, c.problems_per_s) for c in costs] == [
        (2, 2.0, 6.0), (8, 20.0, 30.0), (16, 30.0, 15.0)]  # fmt: skip


def test_crossings_below_one_problem_leave_one_range() -> None:
    fast = WallLine(trial_number=0, load_s=1.0, warmup_s=0.0, problems_per_s=10.0)
    slow = WallLine(trial_number=1, load_s=2.0, warmup_s=0.0, problems_per_s=5.0)
    assert count_ranges([slow, fast]) == [(1, None, fast)]


def test_profile_keeps_each_winner_with_its_counts(tmp_path: Path, workload) -> None:
    study = study_in(tmp_path)
    add_trials(study)
    profile = fitted(study, workload, RunShape(for_count=1000))
    assert profile.config.batch_size == 8 and profile.mode == "standard"
    metrics = profile.metrics
    assert (metrics.load_s, metrics.warmup_s, metrics.for_count) == (15.0, 5.0, 1000)
    assert metrics.predicted_wall_s == pytest.approx(20.0 + 1000 / 10.0)
    assert [(r.min_count, r.max_count, r.config.batch_size) for r in profile.by_count] == [
        (1, 44, 2),
        (45, None, 8),
    ]
    assert fitted(study, workload, RunShape(for_count=10)).config.batch_size == 2
    path = save_profile(profile, tmp_path / "profiles")
    assert load_profile(path) == profile


def test_a_mode_entry_sits_beside_the_standard_one(tmp_path: Path, workload) -> None:
    standard = study_in(tmp_path, "standard")
    add_trials(standard)
    profile = fitted(standard, workload, RunShape(for_count=1000))
    voting = study_in(tmp_path, "vote")
    add_trials(voting, ((4, 1.0, 2.0, 1.0),), samples=3)
    run = RunShape(for_count=50, mode_key="majority_vote/k3", samples_per_problem=3)
    both = fitted(voting, workload, run, existing=profile)
    assert both.mode == "standard" and both.config == profile.config
    entry = both.entry("majority_vote/k3")
    assert entry.config.batch_size == 4 and entry.metrics.problems_per_s == pytest.approx(1.0)
    # 4 sequences of the repeated workload = 1 request of 3 samples for transformers
    assert entry.config.settings["batch_size"] == 1
    assert entry.workload["samples_per_problem"] == 3 and entry.metrics.for_count == 50
    path = save_profile(both, tmp_path / "profiles")
    assert load_profile(path) == both
    alone = fitted(voting, workload, run)  # no standard entry: the mode's own is the profile's
    assert alone.mode == "majority_vote/k3" and alone.modes == {}


def test_a_version_1_profile_reads_as_one_standard_entry(tmp_path: Path, workload) -> None:
    study = study_in(tmp_path)
    add_trials(study)
    path = save_profile(fitted(study, workload, RunShape(for_count=10)), tmp_path / "p")
    data = json.loads(path.read_text())
    for name in ("mode", "by_count", "modes"):
        del data[name]
    for name in ("load_s", "warmup_s", "for_count", "predicted_wall_s"):
        del data["metrics"][name]
    path.write_text(json.dumps(data | {"schema_version": 1}))
    old = load_profile(path)
    assert list(old.entries()) == ["standard"] and old.by_count == ()
    assert old.entry("standard").for_count(5).config == old.config
    assert old.metrics.predicted_wall_s is None


def test_a_maximising_study_of_an_older_infertune_is_refused(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'old.db'}"
    optuna.create_study(storage=storage, study_name="old", direction="maximize")
    with pytest.raises(StudyError, match="another --study-name"):
        open_study(storage, "old", StudySettings(model=TINY))


def test_a_mode_workload_repeats_problems_after_the_canaries(workload) -> None:
    voting = mode_workload(workload, 3)
    assert voting.size == 3 * workload.size and voting.num_canary == workload.num_canary
    assert voting.prompts[: workload.size] == workload.prompts
    assert voting.requests()[: workload.num_canary] == workload.requests()[: workload.num_canary]
    assert mode_workload(workload, 1) is workload
    assert dataclasses.replace(voting, prompts=voting.prompts).key == voting.key

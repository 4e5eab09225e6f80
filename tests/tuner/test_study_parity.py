"""The study's parity constraint is the paired rule of :mod:`tuner.answer_parity`.

A real study (SQLite storage, a real trial subprocess on ``synthetic:tiny``)
against a stored batch-1 reference whose answers are set directly: the
reference is the lowest layer the constraint reads, and a random-weight model
cannot be made to answer on cue.  The trial's own answers are whatever the
model writes, so none equals the gold ``987654321``.
"""

from __future__ import annotations

import dataclasses

import pytest
from rich.console import Console

from common.hardware import fingerprint
from tuner.measurement.benchmark import TrialResult
from tuner.measurement.workload import build_workload
from tuner.profiles import Profile
from tuner.reports.tune import build_profile, trial_table
from tuner.search.space import SearchSpace
from tuner.search.storage import open_study
from tuner.search.study import (
    Objective,
    StudySettings,
    is_feasible,
    optimize,
    store_reference,
    trial_rows,
)

TINY = "synthetic:tiny"
GOLD = "987654321"
CANARIES = 6


@pytest.fixture(scope="module")
def workload():
    built = build_workload(TINY, "synthetic", size=CANARIES, max_new_tokens=8, num_canary=CANARIES)
    return dataclasses.replace(built, answers=(GOLD,) * CANARIES)


def run_study(tmp_path, workload, reference_answer: str) -> dict:
    """One batch-2 trial at threshold 0, against a reference that answered ``reference_answer``."""
    space = SearchSpace(
        backends=("transformers",),
        batch_sizes=(1, 2),
        stoppings=("per_row",),
        sort_by_length=(False,),
        attn_implementations=("sdpa",),
    )
    # threshold 0: agreement alone would accept anything that finished
    settings = StudySettings(model=TINY, n_trials=1, parity_threshold=0.0, seed=0)
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "parity", settings)
    reference = TrialResult(
        status="ok",
        problems_per_s=1.0,
        canary_answers=(reference_answer,) * CANARIES,
        canary_token_ids=((1,),) * CANARIES,
    )
    store_reference(study, "float32", reference)
    [batch2] = [c for c in space.grid() if c.batch_size == 2]
    study.enqueue_trial(space.params_of(batch2))
    optimize(study, Objective(space, workload, settings, log=lambda line: None), settings)
    [trial] = study.get_trials()
    assert trial.user_attrs["status"] == "ok", trial.user_attrs["message"]
    [row] = trial_rows(study)
    return {"feasible": is_feasible(trial), "row": row, "attrs": trial.user_attrs}


def test_a_significantly_less_accurate_trial_is_infeasible(tmp_path, workload) -> None:
    # The reference was right on all six canaries; the trial is right on none.
    outcome = run_study(tmp_path, workload, reference_answer=GOLD)
    attrs = outcome["attrs"]
    assert attrs["is_answering"] is True
    assert (attrs["right_to_wrong"], attrs["wrong_to_right"]) == (CANARIES, 0)
    assert attrs["accuracy_delta"] == -1.0 and attrs["p_value"] == pytest.approx(2 / 2**6)
    assert not outcome["feasible"]  # McNemar, not the (zero) agreement threshold
    assert outcome["row"].right_to_wrong == CANARIES and outcome["row"].p_value < 0.05
    console = Console(width=200, record=True)
    console.print(trial_table([outcome["row"]], baseline=1.0))
    assert "0% 6/0 p=0.031" in console.export_text()  # agreement, flips, McNemar p


def test_changed_but_not_worse_answers_pass_a_zero_threshold(tmp_path, workload) -> None:
    # The reference answered, wrongly: the trial's other wrong answers flip nothing.
    outcome = run_study(tmp_path, workload, reference_answer="1")
    attrs = outcome["attrs"]
    assert attrs["is_answering"] is True and attrs["agreement"] < 1.0
    assert (attrs["right_to_wrong"], attrs["wrong_to_right"], attrs["p_value"]) == (0, 0, 1.0)
    assert outcome["feasible"]
    # the profile of this trial keeps the whole report, and reads back
    hardware = fingerprint()
    profile = build_profile(outcome["row"], 1.0, workload, hardware, "sqlite:///s.db", "parity")
    again = Profile.from_dict(profile.as_dict()).metrics.parity
    assert again is not None and again["is_answering"] is True and again["p_value"] == 1.0

"""The parity reference runs on the canaries alone, once per key, shared through the storage.

Two studies of different names on one real SQLite storage, real trial
subprocesses on synthetic:tiny: the second study reads the reference the first
one measured.  Reference runs are counted by the log lines that announce them.
"""

from __future__ import annotations

import dataclasses

from tuner.measurement.benchmark import parity_report, run_trial
from tuner.measurement.workload import build_workload
from tuner.search.reference import REFERENCE_STUDY, get_reference, load_shared, reference_key
from tuner.search.space import SearchSpace
from tuner.search.storage import open_study
from tuner.search.study import Objective, StudySettings, optimize, references, seed_study

TINY = "synthetic:tiny"


def _study(storage: str, name: str, workload, lines: list[str]):
    space = SearchSpace(backends=("transformers",), batch_sizes=(4,), stoppings=("per_row",),
                        sort_by_length=(False,), attn_implementations=("sdpa",))  # fmt: skip
    settings = StudySettings(model=TINY, n_trials=1, seed=0)
    study = open_study(storage, name, settings)
    seed_study(study, space, None)
    assert optimize(study, Objective(space, workload, settings, log=lines.append), settings)
    return study


def test_a_second_study_reuses_the_reference_of_the_first(tmp_path):
    workload = build_workload(TINY, "synthetic", size=8, max_new_tokens=6, num_canary=3)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    lines: list[str] = []
    first = _study(storage, "first", workload, lines)
    second = _study(storage, "second", workload, lines)
    measured = [line for line in lines if "measuring the parity reference" in line]
    assert len(measured) == 1 and "3 canary problems" in measured[0]
    assert any("read from the storage" in line for line in lines)
    # the canaries alone ran at batch 1, not the 8-problem workload
    key = reference_key(workload, "float32")
    shared = load_shared(first, key)
    assert shared is not None and shared.num_problems == 3
    assert references(second)["float32"] == shared  # the second study's baseline
    for study in (first, second):
        [trial] = study.get_trials()
        assert trial.user_attrs["agreement"] == 1.0 and trial.user_attrs["num_problems"] == 8
    assert REFERENCE_STUDY not in (first.study_name, second.study_name)


def test_the_key_changes_with_what_the_reference_outputs_depend_on():
    workload = build_workload(TINY, "synthetic", size=8, max_new_tokens=6, num_canary=3)
    key = reference_key(workload, "float32", "machine-a")
    assert reference_key(workload, "float32", "machine-a") == key
    # more problems after the canaries: the same reference
    longer = build_workload(TINY, "synthetic", size=16, max_new_tokens=6, num_canary=3)
    assert longer.problem_ids[:3] == workload.problem_ids[:3]
    assert reference_key(longer, "float32", "machine-a") == key
    others = [
        reference_key(workload, "bfloat16", "machine-a"),
        reference_key(workload, "float32", "machine-b"),
        reference_key(dataclasses.replace(workload, max_new_tokens=7), "float32", "machine-a"),
        reference_key(dataclasses.replace(workload, stop=("\n\n",)), "float32", "machine-a"),
        reference_key(dataclasses.replace(workload, num_canary=2), "float32", "machine-a"),
    ]
    assert key not in others and len(set(others)) == len(others)


def test_a_reference_out_of_time_keeps_the_canaries_it_finished(tmp_path):
    """The main job's tune once ended with nothing: its 4-canary batch-1 reference on the
    real model did not finish in its share of a 3-minute budget on a busy machine."""
    workload = build_workload(TINY, "synthetic", size=4, max_new_tokens=4, num_canary=4)
    study = open_study(f"journal:{tmp_path / 'study.log'}", "partial", StudySettings(model=TINY))
    lines: list[str] = []
    # the warm-up and two canaries return; the third canary's generate never does
    reference = get_reference(study, workload, "float32", time_limit_s=20, log=lines.append,
                              env={"INFERTUNE_FAULT": "hang_after_calls:3"})  # fmt: skip
    assert reference.is_ok and len(reference.canary_token_ids) == 2, reference.message
    assert reference.problems_per_s > 0 and "partial: 2 canaries" in lines[-1]
    assert references(study)["float32"] == reference  # the study judges on it
    assert load_shared(study, reference_key(workload, "float32")) is None  # others re-measure
    # a trial of all four canaries is judged on the first two
    trial = run_trial("transformers", TINY, {"batch_size": 4}, workload)
    report = parity_report(trial, reference, workload.answers)
    assert report.num_problems == 2 and report.agreement == 1.0

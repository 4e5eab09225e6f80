"""The Optuna study: search space, pruning, infeasible trials, shared storage, end to end.

Studies are real (real storage, real trials in subprocesses on synthetic
models); the only injected fault is the worker's INFERTUNE_FAULT hook.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import FixedTrial, TrialState

from tuner.measurement.workload import build_workload
from tuner.search.space import SearchSpace, power_of_two_sizes, reference_config
from tuner.search.storage import open_study
from tuner.search.study import (
    Objective,
    SlowerThanBestPruner,
    StudySettings,
    is_feasible,
    optimize,
    seed_study,
)

REPO = Path(__file__).resolve().parents[2]
TINY = "synthetic:tiny"


def test_space_is_conditional_on_the_backend():
    space = SearchSpace(backends=("transformers", "vllm", "transformers_cb"), batch_sizes=(1, 8))
    vllm = space.suggest(
        FixedTrial(
            {
                "backend": "vllm",
                "dtype": "float32",
                "max_num_seqs": 8,
                "max_num_batched_tokens": None,
                "enable_prefix_caching": True,
                "enforce_eager": True,
                "tensor_parallel_size": 1,
            }
        )
    )
    assert vllm.backend == "vllm" and vllm.batch_size == 8
    assert "stopping" not in vllm.settings and vllm.settings["enable_prefix_caching"] is True
    cb = space.config_of(
        {
            "backend": "transformers_cb",
            "dtype": "float32",
            "max_requests_per_batch": 8,
            "max_batch_tokens": 256,
            "attn_implementation": "sdpa",
        }
    )
    assert cb.settings["num_blocks"] * cb.settings["page_size"] >= 8 * 256
    reference = reference_config("float32")
    assert space.config_of(space.params_of(reference)) == reference
    assert space.params_of(reference_config("bfloat16")) is None  # outside the space
    assert len(space.grid()) == 2 * 2 * 2 * 2 + 2 * 3 * 2 * 1 * 1 + 2 * 3 * 2
    assert power_of_two_sizes(24) == (1, 2, 4, 8, 16, 24)


def test_slower_than_best_pruner_on_a_real_study():
    study = optuna.create_study(direction="minimize", pruner=SlowerThanBestPruner(0.5))
    fast = study.ask()
    fast.set_user_attr("problems_per_s", 10.0)  # compared by throughput, not by wall time
    study.tell(fast, 3.0)
    slow, close = study.ask(), study.ask()
    slow.report(4.0, step=8)
    close.report(6.0, step=8)
    assert slow.should_prune() and not close.should_prune()


@pytest.fixture(scope="module")
def tiny_workload():
    return build_workload(TINY, "synthetic", size=6, max_new_tokens=8, num_canary=3)


def test_an_oom_trial_is_recorded_infeasible_and_the_study_completes(tmp_path, tiny_workload):
    space = SearchSpace(
        backends=("transformers",),
        batch_sizes=(1, 4),
        stoppings=("per_row",),
        sort_by_length=(False,),
        attn_implementations=("sdpa",),
    )
    settings = StudySettings(model=TINY, n_trials=3, seed=0)
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "oom", settings)
    seed_study(study, space, None)  # batch 4 first: above the injected limit
    study.enqueue_trial(space.params_of(space.smallest_batch_configs()[0]))
    objective = Objective(
        space, tiny_workload, settings, env={"INFERTUNE_FAULT": "oom_above_batch:2"}
    )
    assert optimize(study, objective, settings) == "n_trials"
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state == TrialState.COMPLETE for t in trials)
    oom = trials[0]
    assert oom.params["batch_size"] == 4 and oom.user_attrs["status"] == "oom"
    assert not is_feasible(oom) and oom.value == math.inf  # never finishes: ranked last
    assert any(k.startswith("constraints") for k in oom.system_attrs)  # Optuna's constraints
    assert is_feasible(trials[1]) and trials[1].user_attrs["agreement"] == 1.0
    assert study.best_trial.number != 0  # Optuna itself skips the infeasible trial


def _tune(args, **kwargs):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen(
        [sys.executable, "-m", "commands", "tune", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_two_workers_share_one_study_without_loss_or_duplication(tmp_path):
    storage = f"journal:{tmp_path / 'study.log'}"
    args = [
        "--model",
        TINY,
        "--dataset",
        "synthetic",
        "--backends",
        "transformers",
        "--workload-size",
        "6",
        "--max-new-tokens",
        "8",
        "--canary-size",
        "3",
        "--n-trials",
        "4",
        "--max-batch-size",
        "6",
        "--storage",
        storage,
        "--study-name",
        "shared",
        "--profiles-dir",
        str(tmp_path / "profiles"),
    ]
    workers = [_tune(args), _tune(args)]
    for worker in workers:
        out, err = worker.communicate(timeout=900)
        assert worker.returncode == 0, err[-2000:]
    study = optuna.load_study(
        study_name="shared",
        storage=open_study(storage, "shared", StudySettings(model=TINY))._storage,
    )
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    # The seed (the largest batch) ran once, not once per worker.
    seeded = [t.system_attrs["fixed_params"] for t in trials if "fixed_params" in t.system_attrs]
    assert sorted(p["batch_size"] for p in seeded) == [6]


def test_tune_writes_a_profile_that_beats_batch_1_and_eval_uses_it(tmp_path):
    profiles = tmp_path / "profiles"
    tune = _tune(
        [
            "--model",
            "synthetic:small",
            "--dataset",
            "synthetic",
            "--backends",
            "transformers",
            "--workload-size",
            "8",
            "--max-new-tokens",
            "8",
            "--canary-size",
            "4",
            "--n-trials",
            "3",
            "--max-batch-size",  # the probe's max: batch 256 on 512 problems took minutes here
            "8",
            "--seed",
            "3",
            "--profiles-dir",
            str(profiles),
        ]
    )
    out, err = tune.communicate(timeout=900)
    assert tune.returncode == 0, err[-2000:]
    [path] = profiles.glob("synthetic-small/*.json")
    profile = json.loads(path.read_text())
    assert profile["metrics"]["speedup"] > 1.0 and profile["config"]["batch_size"] > 1
    assert profile["metrics"]["parity_agreement"] == 1.0
    assert path.with_suffix(".history.png").is_file() and path.with_suffix(".batch.png").is_file()
    env = dict(os.environ, INFERTUNE_PROFILES_DIR=str(profiles))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation.eval",
            "--model",
            "synthetic:small",
            "--dataset",
            "synthetic",
            "--count",
            "3",
            "--max_new_tokens",
            "4",
            "--results_dir",
            str(tmp_path / "results"),
            "--profile",
            "auto",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode in (0, 1), run.stderr[-2000:]
    [settings_file] = (tmp_path / "results").glob("*/run.json")
    settings = json.loads(settings_file.read_text())
    assert settings["profile"]["path"] == str(path)
    # eval applies the profile's winner for its own count (3 problems), which a quicker
    # loading configuration can take from the one tuned for the dataset's size
    from tuner.profiles import Profile

    chosen = Profile.from_dict(profile).entry("standard").for_count(3).config.settings
    assert settings["engine"]["batch_size"] == chosen["batch_size"]
    assert settings["engine"]["stopping"] == chosen["stopping"]


def test_study_is_seeded_with_each_backends_largest_batch_vllm_first(tmp_path):
    space = SearchSpace(backends=("transformers", "vllm"), batch_sizes=(1, 4, 16))
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", "seed", StudySettings(model=TINY))
    seed_study(study, space, None)
    seed_study(study, space, None)  # a second worker enqueues nothing again
    waiting = [t.system_attrs["fixed_params"] for t in study.get_trials(deepcopy=False)]
    # no batch-1 reference trial: the reference runs on the canaries alone, outside the trials
    assert [(p["backend"], p.get("batch_size"), p.get("max_num_seqs")) for p in waiting] == [
        ("vllm", None, 16),
        ("transformers", 16, None),
    ]

"""eval applies the profile entry for its run (count and mode), and --batch-size auto,
through the real command on synthetic:tiny; run.json says what decided."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from evaluation.request import ProfileChoice, ProfileSettings
from tests.evaluation.conftest import only_run_dir
from tests.tuner.test_run_objective import TINY, add_trials, fitted, study_in
from tuner.measurement.workload import build_workload
from tuner.profiles import Profile, save_profile
from tuner.search.objective_wall import RunShape


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """Standard: batch 2 up to 44 problems, batch 8 from 45; majority_vote/k3: batch 4."""
    folder = tmp_path_factory.mktemp("study")
    workload = build_workload(TINY, "synthetic", size=6, max_new_tokens=8, num_canary=3)
    standard = study_in(folder, "standard")
    add_trials(standard)
    profile = fitted(standard, workload, RunShape(for_count=1000))
    voting = study_in(folder, "vote")
    add_trials(voting, ((4, 1.0, 2.0, 1.0),), samples=3)
    run = RunShape(for_count=50, mode_key="majority_vote/k3", samples_per_problem=3)
    return fitted(voting, workload, run, existing=profile)


def run_json(run_eval, tmp_path: Path, *flags: str) -> dict:
    results = tmp_path / "r" / "-".join(flags).replace("/", "_")[-80:]
    assert run_eval(*flags, results=results) == 0
    return json.loads((only_run_dir(results) / "run.json").read_text())


def test_the_entry_for_the_run_s_count_applies(run_eval, profile, tmp_path: Path) -> None:
    path = str(save_profile(profile, tmp_path / "profiles"))
    small = run_json(run_eval, tmp_path, "--profile", path, "--count", "5")
    assert small["engine"]["batch_size"] == 2
    assert small["profile"]["entry"] == {"mode": "standard", "min_count": 1, "max_count": 44,
                                         "count": 5}  # fmt: skip
    large = run_json(run_eval, tmp_path, "--profile", path, "--count", "50")
    assert large["engine"]["batch_size"] == 8 and large["profile"]["entry"]["min_count"] == 45


def test_the_entry_for_the_run_s_mode_applies(run_eval, profile, tmp_path: Path) -> None:
    path = str(save_profile(profile, tmp_path / "profiles"))
    agent = ("--profile", path, "--agent", "majority_vote", "--count", "3")
    tuned = run_json(run_eval, tmp_path, *agent, "--num_runs", "3")
    # the trial's 4 sequences are 1 request of 3 samples: transformers' batch counts requests
    assert tuned["engine"]["batch_size"] == 1
    assert tuned["profile"]["entry"]["mode"] == "majority_vote/k3"
    # k=2 was not tuned: the standard entry for 3 problems, whose requests hold their samples
    untuned = run_json(run_eval, tmp_path, *agent, "--num_runs", "2")
    assert untuned["engine"]["batch_size"] == 2
    assert untuned["profile"]["entry"]["scaled_for_mode"] == {"mode": "majority_vote/k2",
        "samples_per_problem": 2, "from": 2, "to": 2, "cap": 12}  # fmt: skip


def test_an_untuned_mode_scales_a_sequence_counting_batch_up_to_the_cap() -> None:
    cb = ProfileChoice(mode="standard", backend="transformers_cb",
                       engine={"max_requests_per_batch": 8})  # fmt: skip
    settings = ProfileSettings(path="p.json", backend="transformers_cb", choices=(cb,),
                               max_batch_size=12)  # fmt: skip
    assert settings.for_run("majority_vote/k5", 50, 5).engine == {"max_requests_per_batch": 12}
    assert settings.for_run("standard", 50, 1).engine == {"max_requests_per_batch": 8}
    uncapped = dataclasses.replace(settings, max_batch_size=None)
    assert uncapped.for_run("majority_vote/k5", 50, 5).engine == {"max_requests_per_batch": 40}


def test_vllm_scales_past_the_probe_max_up_to_its_default() -> None:
    # measured on SmolLM2: k=5 held at the probe's 32 sequences cost 9.0x the standard pass
    vllm = ProfileChoice(mode="standard", backend="vllm", engine={"max_num_seqs": 32})
    settings = ProfileSettings(path="p.json", backend="vllm", choices=(vllm,), max_batch_size=32)
    assert settings.for_run("majority_vote/k5", 50, 5).engine == {"max_num_seqs": 160}
    assert settings.for_run("majority_vote/k16", 50, 16).engine == {"max_num_seqs": 256}


def test_batch_size_auto_takes_this_machine_s_profile(
    run_eval, profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERTUNE_PROFILES_DIR", str(tmp_path / "profiles"))
    save_profile(profile)
    settings = run_json(run_eval, tmp_path, "--batch-size", "auto", "--count", "5")
    assert (settings["batch_size_source"], settings["batch_size"]) == ("profile", 2)
    assert settings["engine"]["batch_size"] == 2 and settings["profile"]["batch_only"]
    assert settings["backend"] == "transformers"


def test_batch_size_auto_without_a_profile_probes(
    run_eval, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERTUNE_PROFILES_DIR", str(tmp_path / "none"))
    settings = run_json(run_eval, tmp_path, "--batch-size", "auto", "--count", "4")
    assert settings["batch_size_source"] == "probe" and settings["profile"] is None
    assert settings["batch_size"] == settings["engine"]["batch_size"] >= 1


def test_batch_size_must_be_a_number_or_auto(run_eval, capsys) -> None:
    assert run_eval("--batch-size", "many") == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--batch-size: want a whole number or auto, got 'many'" in line


def test_a_resume_without_profile_keeps_the_profile_it_started_with(
    run_eval, profile, tmp_path: Path
) -> None:
    path = str(save_profile(profile, tmp_path / "profiles"))
    first = run_json(run_eval, tmp_path, "--profile", path, "--count", "5")
    [folder] = (tmp_path / "r").iterdir()
    run_dir = only_run_dir(folder)
    assert run_eval("--resume", str(run_dir)) == 0
    resumed = json.loads((run_dir / "run.json").read_text())
    # the resumed run still says which profile chose its engine (it was lost before)
    assert resumed["profile"] == first["profile"]
    assert resumed["engine"]["batch_size"] == first["engine"]["batch_size"] == 2
    assert len(resumed["sessions"]) == 2

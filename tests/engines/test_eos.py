"""Every EOS id of ``generation_config.json`` ends a row, on every backend.

Instruct models often list their end-of-turn ids only there (a list), not in
the tokenizer or the model config.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engines import GenerationRequest, load_engine
from engines.synthetic import resolve_model
from tests.conftest import vllm_installed
from tests.engines.prompts import PROMPTS

SETTINGS = {
    "transformers": {"batch_size": 2},
    "transformers_cb": {"num_blocks": 16, "max_requests_per_batch": 2},
    "vllm": {"enforce_eager": True, "kv_cache_memory_bytes": 64 << 20},
}
REQUEST = GenerationRequest(prompt=PROMPTS[0], max_new_tokens=12)


@pytest.fixture(scope="module")
def plain_tokens() -> tuple[int, ...]:
    with load_engine("transformers", "synthetic:tiny", batch_size=1) as engine:
        [[completion]] = engine.generate([REQUEST])
    assert completion.finish_reason == "length"
    return completion.token_ids


@pytest.fixture(scope="module")
def extra_eos_model(tmp_path_factory, plain_tokens) -> tuple[str, int]:
    """synthetic:tiny whose generation config adds the 4th generated token as an EOS id."""
    folder = tmp_path_factory.mktemp("eos") / "tiny"
    shutil.copytree(resolve_model("synthetic:tiny"), folder)
    path = folder / "generation_config.json"
    config = json.loads(path.read_text())
    extra = plain_tokens[3]
    assert extra not in plain_tokens[:3], "pick a prompt whose 4th token is new"
    config["eos_token_id"] = [config["eos_token_id"], extra]
    path.write_text(json.dumps(config))
    return str(folder), extra


@pytest.mark.parametrize("backend", list(SETTINGS))
def test_generation_config_eos_ids_end_rows(backend: str, extra_eos_model, plain_tokens) -> None:
    if backend == "vllm" and not vllm_installed():
        pytest.skip("vLLM is not installed")
    model, extra = extra_eos_model
    with load_engine(backend, model, **SETTINGS[backend]) as engine:
        assert extra in engine.eos_ids
        [[completion]] = engine.generate([REQUEST])
    assert completion.finish_reason == "eos"
    assert completion.token_ids == plain_tokens[:3] and completion.completion_tokens == 4


def test_the_copy_without_the_extra_id_runs_to_its_length(tmp_path: Path, plain_tokens) -> None:
    # The control: the same folder, unedited, does not stop early.
    folder = tmp_path / "tiny"
    shutil.copytree(resolve_model("synthetic:tiny"), folder)
    with load_engine("transformers", str(folder), batch_size=1) as engine:
        [[completion]] = engine.generate([REQUEST])
    assert completion.token_ids == plain_tokens and completion.finish_reason == "length"

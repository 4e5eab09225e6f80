"""Bad input to the engines gives one-line errors that say what to fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engines import (
    BackendUnavailableError,
    ConfigError,
    GenerationRequest,
    ModelLoadError,
    load_engine,
)
from tests.conftest import REPO


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_unknown_backend_suggests_close_name():
    with pytest.raises(ConfigError) as error:
        load_engine("transformer", "synthetic:tiny")
    assert "did you mean 'transformers'" in one_line(error)


def test_missing_model_path(tmp_path):
    with pytest.raises(ModelLoadError) as error:
        load_engine("transformers", str(tmp_path / "no-such-model"))
    assert "no-such-model" in one_line(error)


def test_unknown_synthetic_model():
    with pytest.raises(ModelLoadError) as error:
        load_engine("transformers", "synthetic:huge")
    assert "synthetic:tiny" in one_line(error)


@pytest.mark.parametrize("batch_size", [0, -3])
def test_batch_size_below_one(batch_size):
    with pytest.raises(ConfigError) as error:
        load_engine("transformers", "synthetic:tiny", batch_size=batch_size)
    assert "batch_size must be >= 1" in one_line(error)


def test_unknown_setting_is_named():
    with pytest.raises(ConfigError) as error:
        load_engine("transformers", "synthetic:tiny", max_num_seqs=4)
    assert "max_num_seqs" in one_line(error)


def test_max_new_tokens_below_one():
    with pytest.raises(ConfigError) as error:
        GenerationRequest(prompt="x", max_new_tokens=0)
    assert "max_new_tokens must be >= 1" in one_line(error)


def test_vllm_missing_names_the_install_step():
    # Block `import vllm` in a fresh interpreter, as on a machine without it.
    code = (
        "import sys; sys.modules['vllm'] = None\n"
        "from engines import load_engine, BackendUnavailableError\n"
        "try:\n    load_engine('vllm', 'synthetic:tiny')\n"
        "except BackendUnavailableError as e:\n    print(e); sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 3, result.stderr
    assert "pip install" in result.stdout and "setup.sh" in result.stdout
    assert issubclass(BackendUnavailableError, Exception)


def test_out_of_memory_is_told_from_other_failures():
    """One classifier for the engine's split-and-retry and the probe's confirmation."""
    import torch

    from engines.errors import EngineOutOfMemoryError, is_out_of_memory

    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: 8 bytes"))
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"))
    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(EngineOutOfMemoryError("out of memory generating a single request"))
    wrapped = ValueError("generation failed")
    wrapped.__cause__ = torch.OutOfMemoryError("CUDA out of memory")
    assert is_out_of_memory(wrapped)
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(None)

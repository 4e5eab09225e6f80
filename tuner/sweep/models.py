"""Can this model load here?  Answered offline, in milliseconds, without loading it.

A sweep may run for hours; a misspelt model id must fail before the first job,
not when its turn comes.  Accepted: ``synthetic:NAME`` (built locally on first
use), a GGUF file or its short name (converted on first use), a local folder
with a ``config.json``, and a hub id already in the Hugging Face cache (this
machine may be offline).
"""

from __future__ import annotations

import os
from pathlib import Path

from engines.errors import ModelLoadError
from engines.models import check_local_model


def check_model(model: str) -> None:
    """Raise :class:`ModelLoadError` naming the fix when ``model`` cannot load here."""
    if check_local_model(model):  # synthetic or GGUF: checked without building or converting
        return
    path = Path(model).expanduser()
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"model folder {model} does not exist or has no config.json;"
                " fix the path or use a hub id such as Qwen/Qwen2.5-Math-1.5B"
            )
        return
    if not _in_hub_cache(model):
        raise ModelLoadError(
            f"model {model!r} is neither a local folder nor in the Hugging Face cache"
            f" ({hub_cache()}); download it first (huggingface-cli download {model})"
            " or fix the id"
        )


def hub_cache() -> Path:
    """The Hugging Face hub cache folder, as ``huggingface_hub`` resolves it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "hub"


def _in_hub_cache(model: str) -> bool:
    snapshots = hub_cache() / f"models--{model.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.glob("*/config.json"))

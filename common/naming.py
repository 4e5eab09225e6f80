"""How a model id becomes a file or folder name: one spelling, used everywhere."""

from __future__ import annotations

import re


def model_slug(model: str) -> str:
    """A path-safe name for ``model``, the one every folder and job id uses.

    The last path component, with anything outside ``[A-Za-z0-9._-]`` turned
    into ``-`` (the old system's results names): ``Qwen/Qwen2.5-Math-1.5B`` ->
    ``Qwen2.5-Math-1.5B``, ``synthetic:small`` -> ``synthetic-small``,
    ``/models/foo/`` -> ``foo``.
    """
    last = model.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", last).strip("-.") or "model"

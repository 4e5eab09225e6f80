"""Datasets, prompts, grading, agents and results: evaluating a model on math problems.

``evaluate(model=..., dataset=..., count=..., batch_size=..., results_dir=...)`` runs
one evaluation and returns its :class:`~evaluation.eval.EvalResult`; it is loaded on
first use, so ``import evaluation`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["EvalRequest", "EvalResult", "evaluate"]


def __getattr__(name: str) -> Any:
    if name in ("evaluate", "EvalResult"):
        from evaluation import eval as module
    elif name == "EvalRequest":
        from evaluation import request as module
    else:
        raise AttributeError(f"module 'evaluation' has no attribute {name!r}")
    return getattr(module, name)

"""Find the fastest engine configuration that keeps the answers, and keep it as a profile.

Folders by role: ``search/`` (the space, the Optuna study, its efficiency),
``measurement/`` (workload, trial subprocess, timers, memory probe, speedup table),
``reports/`` (tables, profile building, plots), ``gates/`` (CI throughput gate),
``profiles/`` (the saved profiles and which one a run applies), ``sweep/`` (grids of
tune-then-evaluate jobs).  A notebook calls :func:`tune`, :func:`probe` and
:func:`speedup` (:mod:`tuner.api`), loaded on first use so ``import tuner`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["probe", "speedup", "tune"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tuner import api

        return getattr(api, name)
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")

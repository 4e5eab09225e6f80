"""The packages' dependencies point one way: ``commands`` on top, then ``tuner``, then
``evaluation``, then ``engines``, with ``common`` below them all.

Each case imports modules in a fresh interpreter and lists the packages it must not load.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMON = sorted(f"common.{p.stem}" for p in (REPO / "common").glob("*.py"))


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        (["engines", "engines.registry", "engines.base"], ("evaluation", "tuner", "commands")),
        (["evaluation.eval", "evaluation.plan"], ("tuner", "commands")),
        # commands/ sits on top: it imports tuner and evaluation, never the reverse
        (
            ["tuner", "tuner.api", "tuner.profiles", "tuner.sweep.runner", "evaluation.eval"],
            ("commands",),
        ),  # fmt: skip
        # every package may use common, so common uses none of them (not even engines.errors)
        (COMMON, ("engines", "evaluation", "tuner", "commands")),
    ],
    ids=["engines", "evaluation", "libraries", "common"],
)
def test_a_package_never_loads_those_above_it(modules: list[str], forbidden: tuple) -> None:
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        f"print([m for m in sys.modules if m.split('.')[0] in {forbidden!r}])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]

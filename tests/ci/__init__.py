"""Checks of the install script and the CI workflows."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def tool(name: str) -> str:
    """Path of the ``name`` executable on PATH or beside this Python, else skip the test."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed (it comes with pip install -e '.[test]')")
    return found

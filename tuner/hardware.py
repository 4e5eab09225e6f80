"""Moved to :mod:`common.hardware` (and :mod:`common.versions`); kept for in-flight imports."""

from common.hardware import GIB, GpuInfo, Hardware, fingerprint, hardware_id
from common.versions import LibraryVersions, library_versions

__all__ = ["GIB", "GpuInfo", "Hardware", "LibraryVersions", "fingerprint", "hardware_id",
           "library_versions"]  # fmt: skip

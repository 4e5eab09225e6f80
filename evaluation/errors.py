"""Errors the evaluation layer raises on purpose.

Both derive from :class:`engines.errors.InfertuneError`, so the CLI turns them
into one line on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

from engines.errors import InfertuneError


class DatasetError(InfertuneError):
    """A dataset name, file, line or slice is invalid; the message says which."""


class ResultsError(InfertuneError):
    """A results folder cannot be written, or does not belong to this run."""

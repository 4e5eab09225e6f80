"""The root of the project's exception tree, below every package.

Every error a user can cause or meet derives from :class:`InfertuneError`, so the
command-line front ends map any of them to one line on stderr and exit code 2
(bad input) without a traceback.  The messages are written to be shown as they
are: they name what was wrong and how to fix it, on one line.

It lives in ``common`` because every package raises it, ``common`` itself included
(a full disk, a settings file past its limits); :mod:`engines.errors` adds the
engines' own kinds and re-exports these two under their usual names.
"""

from __future__ import annotations


class InfertuneError(Exception):
    """Base of every error infertune raises on purpose."""

    exit_code: int = 2


class ConfigError(InfertuneError, ValueError):
    """A setting or an argument is invalid; the message names the field."""

"""The ``infertune`` command line: a layer above ``engines``, ``evaluation`` and ``tuner``.

Each command parses flags (one vocabulary, :mod:`commands.flags`), resolves a
profile where one applies, calls the library function a notebook would call
(``evaluation.evaluate``, ``tuner.tune``, ...), and prints.  Nothing below this
package imports it.
"""

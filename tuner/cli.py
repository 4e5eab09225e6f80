"""``python -m tuner.cli``: the ``infertune`` command, kept for scripts that call it so.

The commands live in :mod:`commands` (a layer above ``tuner``); nothing is imported
unless this runs as a program, so ``tuner`` never depends on the layer above.
"""

if __name__ == "__main__":
    import sys

    from commands.main import main

    sys.exit(main())

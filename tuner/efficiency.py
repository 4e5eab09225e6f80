"""``python -m tuner.efficiency``: the old name of ``infertune efficiency``, kept for scripts.

The benchmark lives in :mod:`tuner.search.efficiency` and the command in
:mod:`commands.efficiency`; nothing is imported unless this runs as a program.
"""

if __name__ == "__main__":
    import sys

    from commands.main import run_standalone

    sys.exit(run_standalone("efficiency", None, prog="python -m tuner.efficiency"))

"""PNG plots of a finished study, saved next to its profile.

Optimisation history and parameter importances come from
``optuna.visualization.matplotlib``; throughput against batch size is drawn
here.  A plot that cannot be made (parameter importances need at least two
completed trials whose parameters vary) is skipped with a note, never an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from tuner.search.trials import TrialRow


def save_plots(
    study: optuna.Study, rows: list[TrialRow], stem: Path
) -> tuple[list[Path], list[str]]:
    """Write ``<stem>.history.png``, ``.importance.png`` and ``.batch.png``.

    Returns:
        The written paths, and one note per plot that was skipped and why.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers
    from optuna.visualization import matplotlib as optuna_plots

    makers: dict[str, Callable[[], Any]] = {
        "history": lambda: optuna_plots.plot_optimization_history(study),
        "importance": lambda: _importance(study, optuna_plots),
        "batch": lambda: _throughput_by_batch(rows),
    }
    written, notes = [], []
    # Optuna logs "Trial N is omitted in visualization" for every trial that timed out (its
    # wall is inf): noise in the middle of tune's report, which shows those trials itself.
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        for name, make in makers.items():
            path = stem.with_name(f"{stem.name}.{name}.png")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    axes = make()
                _save(axes, path)
                written.append(path)
            except Exception as error:  # a plot is a nicety: say why it is missing, go on
                first = str(error).splitlines()[0] if str(error) else repr(error)
                notes.append(f"{name} plot skipped: {first}")
    finally:
        optuna.logging.set_verbosity(verbosity)
    return written, notes


def _importance(study: optuna.Study, optuna_plots: Any) -> Any:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    varying = {
        name
        for name in {p for t in complete for p in t.params}
        if len({repr(t.params.get(name)) for t in complete}) > 1
    }
    if len(complete) < 2 or len(varying) < 2:
        raise ValueError("needs at least two completed trials with two varying parameters")
    return optuna_plots.plot_param_importances(study)


def _throughput_by_batch(rows: list[TrialRow]) -> Any:
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r.status == "ok" and r.batch_size]
    if not measured:
        raise ValueError("no completed trial to plot")
    figure, axes = plt.subplots(figsize=(6, 4))
    for backend in sorted({r.backend for r in measured}):
        points = sorted((r.batch_size, r.problems_per_s) for r in measured if r.backend == backend)
        axes.scatter(*zip(*points, strict=True), label=backend)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("batch size (max_num_seqs for vLLM)")
    axes.set_ylabel("problems/s")
    axes.set_title("Throughput vs batch size")
    axes.legend()
    return axes


def _save(axes: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure = axes.figure if hasattr(axes, "figure") else axes[0].figure
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

"""The tune's plots: written from a real study, without Optuna's per-trial log lines."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import optuna

from tuner.reports.plots import save_plots
from tuner.search.trials import trial_rows


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_timed_out_trial_is_plotted_around_without_a_log_line(tmp_path: Path) -> None:
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(0))
    space = {
        "batch_size": optuna.distributions.IntDistribution(1, 64),
        "stopping": optuna.distributions.CategoricalDistribution(["post", "per_row"]),
    }
    for value in (120.0, 80.0, math.inf):  # a trial that timed out has an infinite predicted wall
        study.tell(study.ask(space), value)
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)  # where Optuna would log the line
    lines = _Lines()  # Optuna's logger does not propagate: listen to it directly
    logging.getLogger("optuna").addHandler(lines)
    try:
        written, notes = save_plots(study, trial_rows(study), tmp_path / "profile")
        restored = optuna.logging.get_verbosity()
    finally:
        logging.getLogger("optuna").removeHandler(lines)
        optuna.logging.set_verbosity(before)
    assert tmp_path / "profile.importance.png" in written, notes  # the plot that logged it
    assert not [line for line in lines.lines if "omitted in visualization" in line]
    assert restored == optuna.logging.INFO  # put back as it was

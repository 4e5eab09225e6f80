"""The tune's plots: written from a real study, without Optuna's per-trial log lines."""

from __future__ import annotations

import math
from pathlib import Path

import optuna

from tuner.reports.plots import save_plots
from tuner.search.trials import trial_rows


def test_a_timed_out_trial_is_plotted_around_without_a_log_line(tmp_path: Path, capfd) -> None:
    study = optuna.create_study(direction="minimize")
    for value in (120.0, math.inf):  # a trial that timed out has an infinite predicted wall
        trial = study.ask({"batch_size": optuna.distributions.IntDistribution(1, 64)})
        study.tell(trial, value)
    written, notes = save_plots(study, trial_rows(study), tmp_path / "profile")
    assert tmp_path / "profile.history.png" in written, notes
    assert "omitted in visualization" not in capfd.readouterr().err
    assert optuna.logging.get_verbosity() == optuna.logging.INFO  # put back as it was

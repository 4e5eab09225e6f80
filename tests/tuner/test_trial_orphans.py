"""A tuner that dies takes its trial with it: no trial subprocess outlives the tune.

Trials run in their own session (so a timeout kills the whole group), which also
means a killed tuner used to leave its trial running, holding the CPU or the
GPU's memory.  The real ``run_trial`` on synthetic:tiny, killed both ways.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
# a trial far longer than the test; SIGTERM exits as the commands' handler does
SCRIPT = """
import signal, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
from tuner.measurement.benchmark import run_trial
from tuner.measurement.workload import build_workload
workload = build_workload("synthetic:tiny", "synthetic", size=5000, max_new_tokens=64,
                          num_canary=1)
run_trial("transformers", "synthetic:tiny", {"batch_size": 1}, workload, time_limit_s=600)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_stopped_tuner_leaves_no_trial_running(sig: signal.Signals) -> None:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    tuner = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=REPO, env=env,
                             stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (children := psutil.Process(tuner.pid).children()):
            assert tuner.poll() is None, tuner.stderr.read().decode()
            assert time.monotonic() < deadline, "the trial never started"
            time.sleep(0.2)
        [trial] = children
        time.sleep(2)  # into its timed run (5,000 problems one at a time: minutes)
        assert trial.is_running() and trial.status() != psutil.STATUS_ZOMBIE
        tuner.send_signal(sig)
        tuner.wait(timeout=60)
        gone, alive = psutil.wait_procs([trial], timeout=30)
        assert not alive, f"trial {trial.pid} outlived the tuner ({sig.name})"
    finally:
        tuner.kill()
        tuner.wait()

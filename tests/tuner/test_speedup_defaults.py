"""The speedup table's ``vllm-defaults`` row (no knob set) and its load-time column.

vLLM with its defaults compiles graphs even on this CPU (about 2 minutes of load for
synthetic:tiny, measured here), so the real run gives it a short time limit: the
row must be measured and shown whether it finishes or times out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.main import main
from engines.vllm import DEFAULT_MAX_NUM_SEQS
from tests.conftest import vllm_installed
from tuner.measurement.speedup import BASELINE, DEFAULT_NAMES, select_configs, standard_configs


def test_vllm_defaults_sets_no_knob_on_cpu_or_gpu() -> None:
    assert "vllm-defaults" in DEFAULT_NAMES
    for on_gpu in (False, True):
        row = standard_configs(on_gpu=on_gpu)["vllm-defaults"]
        assert row.backend == "vllm" and row.settings == {}
        assert row.batch_size == DEFAULT_MAX_NUM_SEQS  # vLLM's own max_num_seqs
    chosen, notes = select_configs([BASELINE, "vllm-defaults"], on_gpu=False, vllm_available=False)
    assert [c.name for c in chosen] == [BASELINE]
    assert notes == ["vllm-defaults: skipped, vLLM is not installed"]


@pytest.mark.skipif(not vllm_installed(), reason="vLLM is not installed")
def test_vllm_defaults_row_and_load_column_in_every_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        ["speedup", "--model", "synthetic:tiny", "--dataset", "synthetic", "--count", "4",
         "--max-new-tokens", "4", "--configs", BASELINE, "vllm-defaults", "--time-limit", "40",
         "--profiles-dir", str(tmp_path / "none"), "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    rows = {row["name"]: row for row in json.loads((out / "speedup.json").read_text())["rows"]}
    assert list(rows) == [BASELINE, "vllm-defaults"]
    assert rows["vllm-defaults"]["settings"] == {}
    assert rows["vllm-defaults"]["status"] in ("ok", "timeout")
    assert rows[BASELINE]["load_s"] > 0.5  # the subprocess's imports count
    markdown = (out / "speedup.md").read_text()
    assert "| configuration | wall time | load |" in markdown
    baseline_line = next(line for line in markdown.splitlines() if line.startswith("| baseline"))
    assert baseline_line.split(" | ")[2] == f"{rows[BASELINE]['load_s']:.1f} s"
    assert "| vllm-defaults |" in markdown and "load: from the start" in markdown
    assert "load_s" in (out / "speedup.csv").read_text().splitlines()[0]

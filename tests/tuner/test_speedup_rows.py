"""The speedup table's stopping and continuous-batching rows run and keep batch 1's tokens."""

from __future__ import annotations

import json
from pathlib import Path

from commands.main import main
from tuner.measurement.speedup import BASELINE, standard_configs

ROWS = ("transformers-bs16-post", "transformers-cb32")


def test_post_stopping_and_continuous_batching_rows_are_configurations() -> None:
    configs = standard_configs(on_gpu=False)
    assert configs["transformers-bs16-post"].settings == {"batch_size": 16, "stopping": "post"}
    assert configs["transformers-bs32"].settings == {"batch_size": 32}  # per_row, the default
    assert configs["transformers-cb32"].backend == "transformers_cb"


def test_post_and_cb_rows_measure_and_agree_with_batch_1(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        ["speedup", "--model", "synthetic:tiny", "--dataset", "synthetic", "--count", "8",
         "--max-new-tokens", "8", "--configs", BASELINE, *ROWS, "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    rows = {row["name"]: row for row in json.loads((out / "speedup.json").read_text())["rows"]}
    assert list(rows) == [BASELINE, *ROWS]
    for name in ROWS:
        # float32 on CPU: neither stopping nor continuous batching may change a token.
        assert rows[name]["status"] == "ok" and rows[name]["agreement"] == 1.0, name
